// Issue 2 on a three-broker cluster: a client bootstrapped from the sidecar only ever
// connects to sidecar listeners (checked on the live sockets), and keeps producing when a
// partition leader moves.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { startKafka, type KafkaCluster } from '../support/kafka.js';
import { startSidecar, type Sidecar } from '../support/sidecar.js';
import { runJavaProducer } from '../support/clients/java.js';
import { kcatConsume } from '../support/clients/kcat.js';
import { output } from '../support/clients/run.js';
import net from 'node:net';
import { RawConnection } from '../support/raw-kafka.js';
import { ApiKey } from '../../sidecar/codec/api.js';
import { createMetadataRequest, encodeMetadataRequest } from '../../sidecar/codec/generated/metadata-request.js';
import { decodeMetadataResponse } from '../../sidecar/codec/generated/metadata-response.js';

let kafka: KafkaCluster;
let sidecar: Sidecar;

beforeAll(async () => {
  kafka = await startKafka({ brokers: 3 });
  sidecar = await startSidecar({ upstream: kafka.bootstrap, mode: 'observe' });
});

afterAll(async () => {
  await sidecar?.stop();
  await kafka?.stop();
});

/** Remote ports of established TCP connections owned by the Java producer under test. */
async function clientRemotePorts(): Promise<number[]> {
  const out = await output('ss', ['-tnpH', 'state', 'established']);
  const ports: number[] = [];
  for (const line of out.split('\n')) {
    const pid = /pid=(\d+)/.exec(line)?.[1];
    if (!pid) continue;
    let cmd = '';
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    // Only the producer under test (the admin tool that moves leaders talks to brokers directly).
    if (!cmd.includes('IdempoClient') || !cmd.includes('\0produce\0')) continue;
    const cols = line.trim().split(/\s+/);
    const peer = cols[3];
    ports.push(Number(peer.slice(peer.lastIndexOf(':') + 1)));
  }
  return ports;
}

describe('three brokers', () => {
  it('clients reach brokers only through sidecar listeners, across a leader move', async () => {
    await kafka.createTopic('moving', 3, 3);
    const brokerPorts = new Set(kafka.brokers.map((b) => b.port));
    const seen = new Set<number>();
    let violations = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        for (const p of await clientRemotePorts()) {
          seen.add(p);
          if (brokerPorts.has(p)) violations++;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const producer = runJavaProducer({ bootstrap: sidecar.bootstrap, topics: ['moving'], count: 3000, delayMs: 2, timeoutMs: 180_000 });
    // Move every partition's leader while the producer runs.
    const before = await kafka.describeTopic('moving');
    for (const p of before) {
      const next = kafka.brokers.map((b) => b.id).find((id) => id !== p.leader)!;
      await kafka.moveLeader('moving', p.partition, next);
    }
    const after = await kafka.describeTopic('moving');
    expect(after.map((p) => p.leader)).not.toEqual(before.map((p) => p.leader));
    const result = await producer;
    sampling = false;
    await sampler;
    expect(result.fatal).toBeNull();
    expect(result.acked).toBe(3000);
    // The client did connect (to the sidecar), and never straight to a broker.
    expect(seen.size).toBeGreaterThan(0);
    expect(violations).toBe(0);
    // Every record once (the Java producer is idempotent by default), read directly from the brokers.
    let total = 0;
    const values = new Set<string>();
    for (const p of after) {
      const recs = await kcatConsume({ bootstrap: kafka.bootstrap, topic: 'moving', partition: p.partition });
      total += recs.length;
      for (const r of recs) values.add(r.value ?? '');
      const keys = recs.map((r) => Number(r.key));
      expect(keys).toEqual([...keys].sort((a, b) => a - b));
    }
    expect(total).toBe(3000);
    expect(values.size).toBe(3000);
  });

  it('opens a listener per broker as it appears and closes it as it vanishes', async () => {
    const brokersSeen = async (): Promise<Map<number, number>> => {
      const c = await RawConnection.connect(sidecar.bootstrap);
      try {
        c.send(ApiKey.Metadata, 12, (w) => encodeMetadataRequest(w, { ...createMetadataRequest(), topics: null }, 12));
        const md = decodeMetadataResponse((await c.receive(ApiKey.Metadata, 12)).body, 12);
        return new Map(md.brokers.map((b) => [b.nodeId, b.port]));
      } finally {
        c.close();
      }
    };
    const accepts = (port: number): Promise<boolean> =>
      new Promise((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port }, () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      });
    const before = await brokersSeen();
    expect([...before.keys()].sort()).toEqual([1, 2, 3]);
    const port3 = before.get(3)!;
    expect(await accepts(port3)).toBe(true);

    await kafka.stopBroker(3);
    await kafka.waitReady();
    await expect.poll(async () => [...(await brokersSeen()).keys()].sort(), { timeout: 30_000 }).toEqual([1, 2]);
    expect(await accepts(port3)).toBe(false);

    await kafka.startBroker(3);
    await expect.poll(async () => [...(await brokersSeen()).keys()].sort(), { timeout: 30_000 }).toEqual([1, 2, 3]);
    // The returning broker gets its old port back, so clients holding old metadata still reach it.
    expect((await brokersSeen()).get(3)).toBe(port3);
    expect(await accepts(port3)).toBe(true);
  });
});
