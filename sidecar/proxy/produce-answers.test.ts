// A broker's Produce answer through one client connection (real sockets, a stub broker): a
// valid one goes back byte for byte after the in-place read (ProduceAnswer); a malformed one
// closes the client connection with a log line and a metric, and nothing else stops.
import net from 'node:net';
import { once } from 'node:events';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { Writer } from '../codec/writer.js';
import { createPartitionProduceResponse, createProduceResponse, createTopicProduceResponse, encodeProduceResponse } from '../codec/generated/produce-response.js';
import { SidecarMetrics } from '../metrics/metrics.js';
import type { Logger } from '../log/log.js';
import { sumMetric } from '../../test/support/prom-text.js';
import { waitFor } from '../../test/support/poll.js';
import { writeResponseHeader } from './headers.js';
import { passThroughHook } from './produce-hook.js';
import { connectThrough, produceFrame } from './client-connection.test-support.js';

const VERSION = 10; // the first with node endpoints: every answer is read

/** The body of a one-partition success, or the same cut short inside its partition entry. */
function answerBody(malformed: boolean): Buffer {
  const resp = createProduceResponse();
  const tr = createTopicProduceResponse();
  tr.name = 't';
  const pr = createPartitionProduceResponse();
  pr.baseOffset = 42n;
  tr.partitionResponses.push(pr);
  resp.responses.push(tr);
  const w = new Writer(128);
  encodeProduceResponse(w, resp, VERSION);
  const body = Buffer.from(w.toBuffer());
  return malformed ? body.subarray(0, 12) : body;
}

function framed(write: (w: Writer) => void): Buffer {
  const w = new Writer(256);
  w.int32(0);
  write(w);
  const b = Buffer.from(w.toBuffer());
  b.writeInt32BE(b.length - 4, 0);
  return b;
}


const closers: Array<() => void> = [];
afterEach(() => {
  while (closers.length > 0) closers.pop()!();
});

/** A stub broker (answers every request with `body`), one client connection through the sidecar's connection code. */
async function setUp(body: Buffer): Promise<{ client: net.Socket; received: Buffer[]; metrics: SidecarMetrics; lines: Array<Record<string, unknown>> }> {
  const broker = net.createServer((s) => {
    let pending = Buffer.alloc(0);
    s.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 4 && pending.length >= 4 + pending.readInt32BE(0)) {
        const correlationId = pending.readInt32BE(8);
        pending = pending.subarray(4 + pending.readInt32BE(0));
        s.write(framed((w) => {
          writeResponseHeader(w, correlationId, 1);
          w.raw(body);
        }));
      }
    });
    s.on('error', () => {});
  });
  broker.listen(0, '127.0.0.1');
  await once(broker, 'listening');
  const brokerPort = (broker.address() as net.AddressInfo).port;
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, { write: (l: string) => lines.push(JSON.parse(l) as Record<string, unknown>) }) as unknown as Logger;
  const metrics = new SidecarMetrics();
  const { client, close } = await connectThrough({ brokerPort, hook: passThroughHook, log, metrics });
  const received: Buffer[] = [];
  client.on('data', (b: Buffer) => received.push(b));
  closers.push(() => {
    close();
    broker.close();
  });
  return { client, received, metrics, lines };
}

describe('Produce answers through a client connection', () => {
  it('a valid answer goes back byte for byte', async () => {
    const { client, received } = await setUp(answerBody(false));
    client.write(produceFrame({ value: 'v', acks: -1, version: VERSION, correlationId: 7 }));
    const want = framed((w) => {
      writeResponseHeader(w, 7, 1);
      w.raw(answerBody(false));
    });
    await waitFor('the answer', () => Buffer.concat(received).length >= want.length);
    expect(Buffer.concat(received).equals(want)).toBe(true);
  });

  it('a malformed answer closes the client connection with a log line and a metric', async () => {
    const { client, received, metrics, lines } = await setUp(answerBody(true));
    const closed = once(client, 'close');
    client.write(produceFrame({ value: 'v', acks: -1, version: VERSION, correlationId: 8 }));
    await closed;
    expect(Buffer.concat(received).length).toBe(0); // nothing of the broken answer reaches the client
    expect(lines.some((l) => /cannot decode the broker's answer/.test(String(l.msg)) && l.api === 'Produce')).toBe(true);
    expect(sumMetric(await metrics.registry.metrics(), 'idempo_upstream_errors_total', { error: 'malformed_answer' })).toBe(1);
  });
});
