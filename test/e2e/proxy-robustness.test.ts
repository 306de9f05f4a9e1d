// Issue 2: bad input gets a clear error and loses nothing. Malformed and oversized frames
// close only the offending connection with one log line; the sidecar keeps serving; bad
// command lines exit non-zero with one line; SIGTERM finishes in-flight requests, exits 0.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runProcess } from '../support/clients/run.js';
import { startKafka, type KafkaCluster } from '../support/kafka.js';
import { SIDECAR_BIN, startSidecar, type Sidecar } from '../support/sidecar.js';
import { RawConnection } from '../support/raw-kafka.js';
import { ApiKey } from '../../sidecar/codec/api.js';
import { decodeApiVersionsResponse } from '../../sidecar/codec/generated/api-versions-response.js';
import { decodeMetadataResponse } from '../../sidecar/codec/generated/metadata-response.js';
import { encodeMetadataRequest, createMetadataRequest } from '../../sidecar/codec/generated/metadata-request.js';

let kafka: KafkaCluster;
let sidecar: Sidecar;

beforeAll(async () => {
  kafka = await startKafka({ brokers: 1 });
  sidecar = await startSidecar({ upstream: kafka.bootstrap, extraArgs: ['--max-frame-bytes', '65536'] });
});

afterAll(async () => {
  await sidecar?.stop();
  await kafka?.stop();
});

async function stillServes(): Promise<void> {
  const c = await RawConnection.connect(sidecar.bootstrap);
  try {
    c.send(ApiKey.ApiVersions, 3, (w) => {
      w.compactString('raw');
      w.compactString('1');
      w.uvarint(0);
    });
    const { body } = await c.receive(ApiKey.ApiVersions, 3);
    const resp = decodeApiVersionsResponse(body, 3);
    expect(resp.errorCode).toBe(0);
    const produce = resp.apiKeys.find((k) => k.apiKey === ApiKey.Produce)!;
    // never more than the sidecar parses; the broker's minimum kept
    expect(produce.maxVersion).toBeLessThanOrEqual(13);
    // Kafka 4 still advertises Produce v0 (for old librdkafka): the minimum is passed through.
    expect(produce.minVersion).toBe(0);
  } finally {
    c.close();
  }
}

describe('bad input', () => {
  it('an oversized frame closes the connection with a clear log line', async () => {
    const c = await RawConnection.connect(sidecar.bootstrap);
    const big = Buffer.alloc(8);
    big.writeInt32BE(10 * 1024 * 1024, 0);
    c.write(big);
    expect(await c.waitClosed()).toBe(true);
    await expect.poll(() => sidecar.logs().some((l) => l.includes('exceeds the limit of 65536 bytes'))).toBe(true);
    expect(await sidecar.metric('idempo_rejected_frames_total', { reason: 'oversized' })).toBe(1);
    await stillServes();
  });

  it('a negative size and a truncated header close the connection; garbage never crashes the sidecar', async () => {
    const neg = await RawConnection.connect(sidecar.bootstrap);
    neg.write(Buffer.from([0xff, 0xff, 0xff, 0xf0, 1, 2, 3]));
    expect(await neg.waitClosed()).toBe(true);

    const short = await RawConnection.connect(sidecar.bootstrap);
    short.write(Buffer.from([0, 0, 0, 5, 0, 0, 0, 1, 2])); // a 5-byte "request": no room for a header
    expect(await short.waitClosed()).toBe(true);

    // A Produce request whose body is random bytes: the decoder refuses it, the sidecar stays up.
    const junk = await RawConnection.connect(sidecar.bootstrap);
    junk.send(ApiKey.Produce, 9, (w) => w.raw(Buffer.from('this is not a produce request at all')));
    expect(await junk.waitClosed()).toBe(true);
    expect(sidecar.proc.exitCode).toBeNull();
    expect(await sidecar.metric('idempo_rejected_frames_total', { reason: 'malformed' })).toBeGreaterThanOrEqual(2);
    await stillServes();
  });

  it('bad command lines and bad config exit non-zero with one clear line', async () => {
    const bad = async (args: string[]): Promise<{ code: number | null; err: string }> => {
      const r = await runProcess(SIDECAR_BIN, args);
      return { code: r.code, err: r.stderr.trim() };
    };
    let r = await bad(['--upstream', 'nope']);
    expect(r.code).toBe(2);
    expect(r.err).toBe('idempo-sidecar: --upstream: expected HOST:PORT, got "nope"');
    r = await bad(['--upstream', '127.0.0.1:1', '--mode', 'strict']);
    expect(r.err).toBe('idempo-sidecar: --mode: expected one of observe, enforce, upgrade, got "strict"');
    r = await bad(['--upstream', '127.0.0.1:1', '--bogus']);
    expect(r.code).toBe(2);
    expect(r.err.split('\n')).toHaveLength(1);
    r = await bad(['--upstream', '127.0.0.1:1', '--config', '/nonexistent/policy.json']);
    expect(r.err).toBe('idempo-sidecar: --config /nonexistent/policy.json: no such file');
  });
});

describe('address rewriting', () => {
  it('Metadata answers name only sidecar listeners on the listen host', async () => {
    const c = await RawConnection.connect(sidecar.bootstrap);
    try {
      for (const v of [4, 9, 12]) {
        c.send(ApiKey.Metadata, v, (w) => encodeMetadataRequest(w, { ...createMetadataRequest(), topics: null }, v));
        const { body } = await c.receive(ApiKey.Metadata, v);
        const md = decodeMetadataResponse(body, v);
        expect(md.brokers.length).toBe(1);
        expect(md.brokers[0].host).toBe('127.0.0.1');
        expect(md.brokers[0].port).not.toBe(kafka.brokers[0].port);
        expect(md.brokers[0].nodeId).toBe(kafka.brokers[0].id);
      }
    } finally {
      c.close();
    }
  });
});

describe('shutdown', () => {
  it('SIGTERM lets an in-flight request finish, then exits 0', async () => {
    const own = await startSidecar({ upstream: kafka.bootstrap });
    await kafka.createTopic('drain-topic', 1, 1);
    const c = await RawConnection.connect(own.bootstrap);
    try {
      // Fetch v4 on an empty partition: the broker holds it for maxWaitMs before answering.
      const corr = c.send(ApiKey.Fetch, 4, (w) => {
        w.int32(-1); // replica id
        w.int32(1500); // max wait
        w.int32(1); // min bytes
        w.int32(1 << 20);
        w.int8(0);
        w.int32(1);
        w.string('drain-topic');
        w.int32(1);
        w.int32(0);
        w.int64(0n);
        w.int32(1 << 20);
      });
      // Give the request time to reach the broker, then ask the sidecar to stop.
      await expect.poll(async () => own.metric('idempo_requests_total', { api: 'Fetch' })).toBe(1);
      const exit = own.stop('SIGTERM');
      const { correlationId } = await c.receive(ApiKey.Fetch, 4, 10_000);
      expect(correlationId).toBe(corr);
      expect(await exit).toBe(0);
      expect(await c.waitClosed()).toBe(true);
    } finally {
      c.close();
      await own.stop();
    }
  });
});
