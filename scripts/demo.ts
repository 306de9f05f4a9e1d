// make demo: idempo on real parts, locally. Starts a KRaft broker, the sidecar in upgrade
// mode with content dedup, sends traffic from clients that are NOT idempotent (librdkafka
// via kcat, kafkajs), including an application-level retry, then reads the topic straight
// from the broker and shows what the sidecar did (its /metrics).
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startKafka } from '../test/support/kafka.js';
import { startSidecar } from '../test/support/sidecar.js';
import { sumMetric } from '../test/support/prom-text.js';
import { kcatConsume, kcatProduce } from '../test/support/clients/kcat.js';
import { kafkajsProduce } from '../test/support/clients/kafkajs.js';

const step = (s: string): void => console.log(`\n==> ${s}`);
const dir = mkdtempSync(path.join(tmpdir(), 'idempo-demo-'));

step('starting a local Apache Kafka broker (KRaft)');
const kafka = await startKafka({ brokers: 1 });
console.log(`    broker at ${kafka.bootstrap} (started in ${kafka.startMs} ms)`);
const policy = path.join(dir, 'policy.yaml');
writeFileSync(
  policy,
  ['# the spec of an IdempotentProducerPolicy, as the operator renders it', 'mode: upgrade', 'dedup:', '  strategy: content', '  window: 5m', 'producer:', '  deliveryTimeout: 60s', ''].join('\n'),
);
try {
  step('starting idempo-sidecar in upgrade mode in front of it');
  const sidecar = await startSidecar({ upstream: kafka.bootstrap, config: policy });
  console.log(`    clients bootstrap from ${sidecar.bootstrap}; metrics at ${sidecar.metricsUrl}/metrics`);
  try {
    await kafka.createTopic('orders', 3, 1);

    step('librdkafka (kcat), enable.idempotence=false, writes 1000 orders through the sidecar');
    const lines = Array.from({ length: 1000 }, (_, i) => `order-${i}:{"order":${i},"amount":${(i * 7) % 100}}`);
    const r = await kcatProduce({ bootstrap: sidecar.bootstrap, topic: 'orders', lines, keyDelimiter: ':' });
    console.log(`    kcat exit ${r.exitCode}, ${r.deliveryFailures} delivery failures`);

    step('kafkajs (not idempotent) sends a batch, times out in its own head, and sends it again');
    const batch = Array.from({ length: 5 }, (_, i) => ({ key: `retry-${i}`, value: `{"payment":${i}}`, partition: 0 }));
    const first = await kafkajsProduce({ bootstrap: sidecar.bootstrap, topic: 'orders', messages: batch });
    const again = await kafkajsProduce({ bootstrap: sidecar.bootstrap, topic: 'orders', messages: batch });
    console.log(`    first send: offset ${first[0].baseOffset}; application retry answered with offset ${again[0].baseOffset}`);

    step('reading the topic straight from the broker');
    const records = await kcatConsume({ bootstrap: kafka.bootstrap, topic: 'orders' });
    const keys = records.map((x) => x.key);
    console.log(`    ${records.length} records, ${new Set(keys).size} distinct keys (1000 orders + 5 payments, each once)`);

    step('what the sidecar did (GET /metrics)');
    const text = await sidecar.metrics();
    for (const name of ['idempo_upgraded_batches_total', 'idempo_duplicates_rejected_total', 'idempo_out_of_sequence_total', 'idempo_retries_total', 'idempo_producer_sessions']) {
      console.log(`    ${name} = ${sumMetric(text, name)}`);
    }
    for (const line of text.split('\n').filter((l) => l.startsWith('idempo_produce_batches_total'))) console.log(`    ${line}`);
    const ready = await (await fetch(`${sidecar.metricsUrl}/readyz`)).text();
    console.log(`    /readyz: ${ready.trim()}`);
  } finally {
    await sidecar.stop();
  }
} finally {
  await kafka.stop();
  rmSync(dir, { recursive: true, force: true });
}
step('done: broker and sidecar stopped');
