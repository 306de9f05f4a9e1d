// TCP sockets as the kernel sees them (/proc/net/tcp and tcp6): lets a test wait on what a
// process does with its sockets (stopped reading: bytes pile up in its receive queue) rather
// than on time.
import { readFileSync } from 'node:fs';

export interface TcpSocket {
  localPort: number;
  remotePort: number;
  /** Bytes written and not yet acknowledged by the peer. */
  txQueue: number;
  /** Bytes received and not yet read by the owning process. */
  rxQueue: number;
}

export function tcpSockets(): TcpSocket[] {
  const out: TcpSocket[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue; // no IPv6 in this namespace
    }
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue ...; addresses are HEXIP:HEXPORT
      const f = line.trim().split(/\s+/);
      if (f.length < 5) continue;
      const [tx, rx] = f[4].split(':');
      out.push({
        localPort: parseInt(f[1].split(':')[1], 16),
        remotePort: parseInt(f[2].split(':')[1], 16),
        txQueue: parseInt(tx, 16),
        rxQueue: parseInt(rx, 16),
      });
    }
  }
  return out;
}
