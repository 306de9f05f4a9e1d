// A request the hook keeps nothing of is written upstream from the client's lent read buffer
// (socket-reads.ts). A write the upstream socket queues keeps that whole 64 KiB buffer, so the
// next read goes into a new one. Behind bytes the upstream socket has not taken, every request is
// copied instead (connection.ts mayLendUpstream): otherwise a broker that stops reading would hold
// one read buffer per client read — memory growing by reads (64 KiB each, however small the
// request), not by the bytes the budgets count.
import net from 'node:net';
import { once } from 'node:events';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SidecarMetrics } from '../metrics/metrics.js';
import type { Logger } from '../log/log.js';
import { waitFor } from '../../test/support/poll.js';
import type { ProduceHook } from './produce-hook.js';
import { READ_BUFFER_BYTES } from './socket-reads.js';
import { connectThrough, produceFrame } from './client-connection.test-support.js';

const closers: Array<() => void> = [];
afterEach(() => {
  vi.restoreAllMocks();
  while (closers.length > 0) closers.pop()!();
});

/** An acks=0 Produce v9 frame (size prefix included) with one record of `valueBytes`. */

describe('requests written from the lent read buffer', () => {
  it('behind bytes the upstream socket has not taken, small requests are copied: no 64 KiB read buffer left per read', async () => {
    // A broker that never reads: once the kernel's buffers are full, the sidecar's writes queue.
    const brokerSockets: net.Socket[] = [];
    const broker = net.createServer((s) => {
      s.pause();
      s.on('error', () => {});
      brokerSockets.push(s);
    });
    broker.listen(0, '127.0.0.1');
    await once(broker, 'listening');
    let read = 0;
    const hook: ProduceHook = {
      needsDecoding: true,
      keepsNoBytes: () => true, // observe-like: requests may be forwarded from the read buffer
      onProduce: () => {
        read++;
        return { kind: 'forward' };
      },
    };
    const log = pino({ level: 'silent' }) as unknown as Logger;
    const { client, conns, close } = await connectThrough({ brokerPort: (broker.address() as net.AddressInfo).port, hook, log, metrics: new SidecarMetrics() });
    closers.push(() => {
      close();
      for (const s of brokerSockets) s.destroy();
      broker.close();
    });
    /** Writes `frame` and waits until the connection read it (each small request is then its own read). */
    const send = async (frame: Buffer): Promise<void> => {
      const before = read;
      client.write(frame);
      await waitFor('the request read by the sidecar', () => read > before, 30_000, 1);
    };
    const upstreamQueued = (): number => (conns[0] as unknown as { link: { socket?: net.Socket } }).link.socket?.writableLength ?? 0;

    // Fill the kernel's buffers towards the broker until the sidecar's upstream socket queues bytes
    // (below its 1 MiB high-water mark, so the client is still read).
    // acks=0: nothing answers these, so their byte budget comes back at once.
    const big = produceFrame({ value: 'x'.repeat(200_000), acks: 0, version: 9, correlationId: 1 });
    for (let i = 0; i < 500 && upstreamQueued() === 0; i++) await send(big);
    expect(upstreamQueued()).toBeGreaterThan(0);
    expect(upstreamQueued()).toBeLessThan(1 << 20);

    // Now small requests, one read each: count the read buffers the client's reads take meanwhile.
    const alloc = vi.spyOn(Buffer, 'allocUnsafe');
    const small = produceFrame({ value: 'x'.repeat(100), acks: 0, version: 9, correlationId: 1 });
    const n = 300;
    for (let i = 0; i < n; i++) await send(small);
    const readBuffers = alloc.mock.calls.filter(([size]) => size === READ_BUFFER_BYTES).length;
    // Without the copy: one new 64 KiB buffer per read (~19 MiB here for ~50 KB of requests).
    expect(readBuffers).toBeLessThanOrEqual(1);
    expect(upstreamQueued()).toBeGreaterThan(0); // still queued: the broker never read
  });
});
