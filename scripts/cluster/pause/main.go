// pause: the sandbox ("infra") container of every pod on the local node. It holds the
// pod's namespaces open, so it only has to stay alive until SIGTERM/SIGINT, and, being
// PID 1 when the pod shares its process namespace, reap the children that get orphaned.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		// Reap every exited child; -1 = any child, WNOHANG = don't block when none is left.
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
