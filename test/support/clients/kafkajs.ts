// kafkajs (2.2.4) helpers: a pure-JS client no one here wrote. Logs are silenced; every helper
// connects, does its job and disconnects (also on error).
import { Kafka, Partitioners, logLevel, type IHeaders, type RecordMetadata } from 'kafkajs';
import type { ConsumedRecord } from './java.js';

export interface PartitionInfo {
  partition: number;
  leader: number;
  /** Assignment order: the first replica is the preferred leader. */
  replicas: number[];
  isr: number[];
}

/** A kafkajs client for a "host:port,host:port" bootstrap string, with logging off. */
export function kafkajsClient(bootstrap: string, clientId = 'idempo-test-kafkajs'): Kafka {
  return new Kafka({
    clientId,
    brokers: bootstrap.split(',').map((s) => s.trim()).filter(Boolean),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3000,
    retry: { retries: 8, initialRetryTime: 100, maxRetryTime: 2000 },
  });
}

export async function kafkajsCreateTopics(
  bootstrap: string,
  topics: { topic: string; numPartitions?: number; replicationFactor?: number }[],
): Promise<void> {
  const admin = kafkajsClient(bootstrap).admin();
  await admin.connect();
  try {
    // Resolves false (not an error) when a topic exists; waitForLeaders polls metadata.
    await admin.createTopics({ topics, waitForLeaders: true, timeout: 30_000 });
  } finally {
    await admin.disconnect();
  }
}

export async function kafkajsTopicMetadata(bootstrap: string, topic: string): Promise<PartitionInfo[]> {
  const admin = kafkajsClient(bootstrap).admin();
  await admin.connect();
  try {
    const md = await admin.fetchTopicMetadata({ topics: [topic] });
    return md.topics[0].partitions
      .map((p) => ({ partition: p.partitionId, leader: p.leader, replicas: p.replicas, isr: p.isr }))
      .sort((a, b) => a.partition - b.partition);
  } finally {
    await admin.disconnect();
  }
}

export interface KafkajsProduceOptions {
  bootstrap: string;
  topic: string;
  /** `timestamp`: set by the application (ms since the epoch, as a string, kafkajs's type). */
  messages: { key?: string | null; value: string | Buffer | null; partition?: number; headers?: IHeaders; timestamp?: string }[];
  /** kafkajs is non-idempotent unless asked (then acks must be -1 and one request in flight). */
  idempotent?: boolean;
  acks?: -1 | 0 | 1;
  /** Messages per send() call (one request per call); default all in one. */
  batchSize?: number;
  timeoutMs?: number;
}

/** Produces with kafkajs; returns the broker's answers (one per partition per send call). */
export async function kafkajsProduce(o: KafkajsProduceOptions): Promise<RecordMetadata[]> {
  const producer = kafkajsClient(o.bootstrap).producer({
    idempotent: o.idempotent ?? false,
    maxInFlightRequests: o.idempotent ? 1 : undefined,
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: true,
  });
  await producer.connect();
  try {
    const out: RecordMetadata[] = [];
    const size = o.batchSize ?? o.messages.length;
    for (let i = 0; i < o.messages.length; i += size) {
      out.push(
        ...(await producer.send({
          topic: o.topic,
          acks: o.acks ?? -1,
          timeout: o.timeoutMs ?? 30_000,
          messages: o.messages.slice(i, i + size),
        })),
      );
    }
    return out;
  } finally {
    await producer.disconnect();
  }
}

export interface KafkajsConsumeOptions {
  bootstrap: string;
  topics: string[];
  /** Resolves once this many records arrived (plus lingerMs), or at timeoutMs. */
  count: number;
  groupId?: string;
  timeoutMs?: number;
  lingerMs?: number;
}

/** Consumes from the beginning with a consumer group; returns the records (may be fewer on timeout). */
export async function kafkajsConsume(o: KafkajsConsumeOptions): Promise<{ records: ConsumedRecord[]; timedOut: boolean }> {
  const consumer = kafkajsClient(o.bootstrap).consumer({
    groupId: o.groupId ?? `idempo-test-${Math.random().toString(36).slice(2)}`,
    // Short session/rebalance so a test group joins and leaves quickly.
    sessionTimeout: 10_000,
    rebalanceTimeout: 10_000,
    heartbeatInterval: 1000,
    maxWaitTimeInMs: 200,
  });
  const records: ConsumedRecord[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: o.topics, fromBeginning: true });
    const timedOut = await new Promise<boolean>((resolve, reject) => {
      let lingering = false;
      const timer = setTimeout(() => resolve(true), o.timeoutMs ?? 30_000);
      consumer
        .run({
          eachMessage: async ({ topic, partition, message }) => {
            records.push({
              topic,
              partition,
              offset: Number(message.offset),
              key: message.key?.toString() ?? null,
              value: message.value?.toString() ?? null,
            });
            if (records.length >= o.count && !lingering) {
              lingering = true;
              clearTimeout(timer);
              setTimeout(() => resolve(false), o.lingerMs ?? 0);
            }
          },
        })
        .catch(reject);
    });
    return { records, timedOut };
  } finally {
    await consumer.disconnect();
  }
}
