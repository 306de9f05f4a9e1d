// ProduceCall.sentAfter through a real client connection: the earliest time the client may have
// sent a request, which the engine's claims and answer deadline count from (claim.ts). A request
// whose bytes arrive over two reads counts from the first.
import net from 'node:net';
import { once } from 'node:events';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { SidecarMetrics } from '../metrics/metrics.js';
import type { Logger } from '../log/log.js';
import { waitFor } from '../../test/support/poll.js';
import type { ProduceCall, ProduceHook } from './produce-hook.js';
import { connectThrough, produceFrame } from './client-connection.test-support.js';

const closers: Array<() => void> = [];
afterEach(() => {
  while (closers.length > 0) closers.pop()!();
});


describe('ProduceCall.sentAfter', () => {
  it('a request split over two reads counts from the read of its first bytes', async () => {
    const broker = net.createServer((s) => s.on('error', () => {})); // never answers: not needed
    broker.listen(0, '127.0.0.1');
    await once(broker, 'listening');
    const calls: ProduceCall[] = [];
    const hook: ProduceHook = {
      needsDecoding: true,
      onProduce: (call) => {
        calls.push(call);
        return { kind: 'forward' };
      },
    };
    const log = pino({ level: 'silent' }) as unknown as Logger;
    const { client, conns, close } = await connectThrough({ brokerPort: (broker.address() as net.AddressInfo).port, hook, log, metrics: new SidecarMetrics() });
    closers.push(() => {
      close();
      broker.close();
    });
    const frame = produceFrame({ value: 'x'.repeat(2000), acks: -1, version: 9, correlationId: 1 });
    client.write(frame.subarray(0, 100));
    // The connection read the first bytes (it notes each read's time), and the clock moved on since.
    const firstRead = (): number => (conns[0] as unknown as { chunkSentAfter: number } | undefined)?.chunkSentAfter ?? 0;
    await waitFor('the first bytes read', () => firstRead() > 0);
    await waitFor('the clock past that read', () => Date.now() > firstRead());
    const restWritten = Date.now();
    client.write(frame.subarray(100));
    await waitFor('the request handed to the hook', () => calls.length === 1);
    expect(calls[0].sentAfter).toBeLessThan(restWritten);
  });
});
