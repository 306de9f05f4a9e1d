// Issue 2: SASL. A client's own SASL exchange passes through the sidecar untouched (its
// connection is paired 1:1 with an upstream one); the sidecar's own connections (metadata,
// upgrade-mode sends) authenticate with credentials from a file. No secret reaches the logs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { startKafka, type KafkaCluster } from '../support/kafka.js';
import { startSidecar } from '../support/sidecar.js';
import { kcatConsume } from '../support/clients/kcat.js';

let kafka: KafkaCluster;
let dir: string;
let passwordFile: string;
const CLIENT_SECRET = 'alice-pw-7f3a9c';
const SIDECAR_SECRET = 'sidecar-pw-51d2e8';

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'idempo-sasl-'));
  passwordFile = path.join(dir, 'password');
  writeFileSync(passwordFile, `${SIDECAR_SECRET}\n`);
  kafka = await startKafka({
    brokers: 1,
    externalListener: (_id, port) => port,
    serverProps: {
      'listener.security.protocol.map': 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,EXTERNAL:SASL_PLAINTEXT',
      'sasl.enabled.mechanisms': 'PLAIN',
      'listener.name.external.plain.sasl.jaas.config': `org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="${CLIENT_SECRET}" user_idempo="${SIDECAR_SECRET}";`,
    },
  });
});

afterAll(async () => {
  await kafka?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function client(bootstrap: string, password: string): Kafka {
  return new Kafka({ clientId: 'sasl-test', brokers: [bootstrap], logLevel: logLevel.NOTHING, sasl: { mechanism: 'plain', username: 'alice', password }, retry: { retries: 2 } });
}

describe('SASL', () => {
  it('a SASL client produces through the sidecar in upgrade mode; secrets never logged', async () => {
    const sidecar = await startSidecar({
      upstream: kafka.externalBootstrap!,
      mode: 'upgrade',
      logLevel: 'debug',
      extraArgs: ['--upstream-sasl-mechanism', 'PLAIN', '--upstream-sasl-username', 'idempo', '--upstream-sasl-password-file', passwordFile],
    });
    try {
      await kafka.createTopic('sasl-topic', 2, 1);
      const producer = client(sidecar.bootstrap, CLIENT_SECRET).producer({ idempotent: false });
      await producer.connect();
      const res = await producer.send({ topic: 'sasl-topic', acks: -1, messages: Array.from({ length: 50 }, (_, i) => ({ key: String(i), value: `sasl:${i}` })) });
      await producer.disconnect();
      expect(res.every((r) => r.errorCode === 0)).toBe(true);
      const got = await kcatConsume({ bootstrap: kafka.bootstrap, topic: 'sasl-topic' });
      expect(got.map((r) => r.value).sort()).toEqual(Array.from({ length: 50 }, (_, i) => `sasl:${i}`).sort());
      expect(await sidecar.metric('idempo_upgraded_batches_total')).toBeGreaterThan(0);

      // A wrong password is the broker's to refuse, through the sidecar.
      const bad = client(sidecar.bootstrap, 'wrong').producer();
      await expect(bad.connect()).rejects.toThrow(/SASL|authentication/i);
      const logs = sidecar.logs().join('\n');
      expect(logs).not.toContain(CLIENT_SECRET);
      expect(logs).not.toContain(SIDECAR_SECRET);
    } finally {
      await sidecar.stop();
    }
  });

  it('without credentials of its own the sidecar is not ready, and says why', async () => {
    const sidecar = await startSidecar({ upstream: kafka.externalBootstrap!, waitReady: false });
    try {
      await expect.poll(() => sidecar.logs().some((l) => l.includes('cannot fetch upstream metadata yet')), { timeout: 20_000 }).toBe(true);
      expect((await fetch(`${sidecar.metricsUrl}/readyz`)).status).toBe(503);
    } finally {
      await sidecar.stop();
    }
  });
});
