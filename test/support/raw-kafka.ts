// A raw Kafka connection for tests that need exact bytes on the wire: malformed frames,
// hand-built requests, or requests a client library would never send.
import net from 'node:net';
import { Writer } from '../../sidecar/codec/writer.js';
import { Reader } from '../../sidecar/codec/reader.js';
import { requestHeaderVersion, responseHeaderVersion } from '../../sidecar/codec/api.js';

export class RawConnection {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private waiters: Array<() => void> = [];
  closed = false;
  private corr = 1;

  private constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.buffered += d.length;
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  static connect(hostPort: string): Promise<RawConnection> {
    const [host, port] = hostPort.split(':');
    return new Promise((resolve, reject) => {
      const s = net.connect({ host, port: Number(port) }, () => resolve(new RawConnection(s)));
      s.once('error', reject);
    });
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Sends a request (header built here) and returns its correlation id. */
  send(apiKey: number, version: number, body: (w: Writer) => void, clientId = 'raw-test'): number {
    const corr = this.corr++;
    const w = new Writer(256);
    w.int32(0);
    w.int16(apiKey);
    w.int16(version);
    w.int32(corr);
    w.nullableString(clientId);
    if (requestHeaderVersion(apiKey, version) >= 2) w.uvarint(0);
    body(w);
    const out = Buffer.from(w.toBuffer());
    out.writeInt32BE(out.length - 4, 0);
    this.write(out);
    return corr;
  }

  /** Next response frame: correlation id and a Reader positioned at the body. */
  async receive(apiKey: number, version: number, timeoutMs = 10_000): Promise<{ correlationId: number; body: Reader }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.buffered >= 4) {
        // Join chunks only once a whole frame is here (large answers arrive in many chunks).
        if (this.chunks[0].length < 4) this.chunks = [Buffer.concat(this.chunks)];
        const size = this.chunks[0].readInt32BE(0);
        if (this.buffered >= 4 + size) {
          const all = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks);
          const frame = all.subarray(4, 4 + size);
          const rest = all.subarray(4 + size);
          this.chunks = rest.length > 0 ? [rest] : [];
          this.buffered = rest.length;
          const r = new Reader(frame);
          const correlationId = r.int32();
          if (responseHeaderVersion(apiKey, version) >= 1) r.taggedFields();
          return { correlationId, body: r };
        }
      }
      if (this.closed) throw new Error('connection closed');
      if (Date.now() > deadline) throw new Error('no response in time');
      await this.waitData(deadline - Date.now());
    }
  }

  /** Resolves true when the peer closed the connection within timeoutMs. */
  async waitClosed(timeoutMs = 10_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) await this.waitData(deadline - Date.now());
    return this.closed;
  }

  close(): void {
    this.socket.destroy();
  }

  private waitData(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, Math.max(1, ms));
      this.waiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}
