// The app of the node e2e test's producer Deployment: kafkajs (mounted from the repo's
// node_modules) writes records 0, 1, 2, ... (key = value = the number) in batches, each batch
// waited for before the next, to $KAFKA_BOOTSTRAP_SERVERS (the webhook points it at the
// injected sidecar). kafkajs retries by itself; when a send still fails, the app sends the
// same batch again with the same timestamps — the copy the sidecar must not write twice.
// SIGTERM (or $COUNT records acknowledged): finish the batch in flight, print
// {"event":"done","next":N} and exit 0. With $SASL_DIR the app authenticates itself too
// (username/password files from its own Secret; the sidecar relays the exchange).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { Kafka, logLevel } = require('/opt/kafkajs');
const brokers = process.env.KAFKA_BOOTSTRAP_SERVERS.split(',');
const topic = process.env.TOPIC;
const batch = Number(process.env.BATCH ?? '10');
const pauseMs = Number(process.env.PAUSE_MS ?? '20');
const count = Number(process.env.COUNT ?? 'Infinity');
const saslDir = process.env.SASL_DIR;
const sasl = saslDir
  ? { mechanism: process.env.SASL_MECHANISM ?? 'plain', username: readFileSync(`${saslDir}/username`, 'utf8').trim(), password: readFileSync(`${saslDir}/password`, 'utf8').trim() }
  : undefined;
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let stopping = false;
process.on('SIGTERM', () => (stopping = true));

const kafka = new Kafka({ clientId: 'numbered', brokers, sasl, logLevel: logLevel.NOTHING, requestTimeout: 10_000, retry: { retries: 8, initialRetryTime: 100, maxRetryTime: 2000 } });
const producer = kafka.producer({ idempotent: false, maxInFlightRequests: 1, allowAutoTopicCreation: false });
const t0 = Date.now();
let next = 0;
for (let attempt = 1; ; attempt++) {
  try {
    await producer.connect();
    break;
  } catch (e) {
    out({ event: 'connect-retry', attempt, err: String(e.message) });
    await sleep(500);
  }
}
out({ event: 'connected', brokers });
while (!stopping && next < count) {
  const messages = [];
  for (let i = next; i < next + batch; i++) messages.push({ key: String(i), value: String(i), timestamp: String(t0 + i) });
  for (let attempt = 1; ; attempt++) {
    try {
      await producer.send({ topic, acks: -1, messages });
      break;
    } catch (e) {
      out({ event: 'resend', from: next, attempt, err: String(e.message) });
      await sleep(200);
    }
  }
  next += batch;
  if (next % 100 === 0) out({ event: 'acked', next });
  await sleep(pauseMs);
}
out({ event: 'done', next });
await producer.disconnect().catch(() => {});
process.exit(0);
