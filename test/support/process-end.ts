// Synchronous cleanup when a test or bench process ends without its own stop(): on 'exit', and on
// SIGINT/SIGTERM (Ctrl-C, vitest ending a worker after a timeout), which skip 'exit' handlers.
// Each handler runs once, whichever comes first; after a signal the process still ends by it.
const handlers: Array<() => void> = [];
let installed = false;

function runAll(): void {
  for (const h of handlers.splice(0)) h();
}

export function onProcessEnd(handler: () => void): void {
  handlers.push(handler);
  if (installed) return;
  installed = true;
  process.once('exit', runAll);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      runAll();
      process.kill(process.pid, sig); // our listener is gone now: the default action ends us
    });
  }
}
