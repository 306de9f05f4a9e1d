// Issue 2: TLS to the brokers. The broker's client listener speaks TLS with a certificate
// from a throwaway CA (issued by the operator's own certs module); the sidecar verifies it
// (CA file, hostname/SNI) while the application talks plain Kafka on loopback.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPrivateKey } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { issueCA, issueServing } from '../../operator/certs/issue.js';
import { startKafka, type KafkaCluster } from '../support/kafka.js';
import { startSidecar } from '../support/sidecar.js';
import { kafkajsConsume, kafkajsProduce } from '../support/clients/kafkajs.js';

let kafka: KafkaCluster;
let dir: string;
let caFile: string;
let otherCaFile: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'idempo-tls-'));
  const ca = issueCA({ commonName: 'idempo test CA' });
  const serving = issueServing(ca, ['kafka.test.local', 'localhost'], ['127.0.0.1']);
  // Kafka's PEM keystore wants the key as PKCS#8 in the same file as the certificate chain.
  const pkcs8 = createPrivateKey(serving.keyPem).export({ type: 'pkcs8', format: 'pem' }) as string;
  const keystore = path.join(dir, 'broker.pem');
  writeFileSync(keystore, pkcs8 + serving.certPem);
  caFile = path.join(dir, 'ca.pem');
  writeFileSync(caFile, ca.certPem);
  otherCaFile = path.join(dir, 'other-ca.pem');
  writeFileSync(otherCaFile, issueCA({ commonName: 'someone else' }).certPem);
  kafka = await startKafka({
    brokers: 1,
    externalListener: (_id, port) => port,
    serverProps: {
      'listener.security.protocol.map': 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,EXTERNAL:SSL',
      'listener.name.external.ssl.keystore.type': 'PEM',
      'listener.name.external.ssl.keystore.location': keystore,
    },
  });
});

afterAll(async () => {
  await kafka?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('upstream TLS', () => {
  it('produces and consumes through a sidecar that verifies the broker certificate', async () => {
    const sidecar = await startSidecar({ upstream: kafka.externalBootstrap!, mode: 'upgrade', extraArgs: ['--upstream-ca-file', caFile, '--upstream-server-name', 'kafka.test.local'] });
    try {
      await kafka.createTopic('tls-topic', 2, 1);
      const messages = Array.from({ length: 100 }, (_, i) => ({ key: String(i), value: `tls:${i}` }));
      const acks = await kafkajsProduce({ bootstrap: sidecar.bootstrap, topic: 'tls-topic', messages, batchSize: 25 });
      expect(acks.every((a) => a.errorCode === 0)).toBe(true);
      const { records } = await kafkajsConsume({ bootstrap: sidecar.bootstrap, topics: ['tls-topic'], count: 100, lingerMs: 300 });
      expect(records.map((r) => r.value).sort()).toEqual(messages.map((m) => m.value).sort());
      expect(await sidecar.metric('idempo_upgraded_batches_total')).toBeGreaterThan(0);
    } finally {
      await sidecar.stop();
    }
  });

  async function notReady(extraArgs: string[], logPattern: RegExp): Promise<void> {
    const s = await startSidecar({ upstream: kafka.externalBootstrap!, extraArgs, waitReady: false });
    try {
      await expect.poll(() => s.logs().some((l) => l.includes('cannot fetch upstream metadata yet') && logPattern.test(l)), { timeout: 20_000 }).toBe(true);
      expect((await fetch(`${s.metricsUrl}/readyz`)).status).toBe(503);
    } finally {
      await s.stop();
    }
  }

  it('refuses a broker whose certificate does not chain to the given CA', async () => {
    await notReady(['--upstream-ca-file', otherCaFile], /unable to verify the first certificate/);
  });

  it('checks the host name (SNI) against the certificate', async () => {
    await notReady(['--upstream-ca-file', caFile, '--upstream-server-name', 'evil.example.com'], /evil\.example\.com/);
  });
});
