// Cross-check with kafkajs 2.2.4's own protocol encoders/decoders (a client no one here wrote):
// requests kafkajs encodes must decode with our codecs and re-encode to the same bytes, and
// responses we encode must decode with kafkajs.
import { createRequire } from 'node:module';
import { describe, expect, test } from 'vitest';
import { decodeApiVersionsResponse, encodeApiVersionsResponse, createApiVersionsResponse } from './generated/api-versions-response.js';
import { decodeMetadataRequest, encodeMetadataRequest } from './generated/metadata-request.js';
import { createMetadataResponse, decodeMetadataResponse, encodeMetadataResponse } from './generated/metadata-response.js';
import { decodeProduceRequest, encodeProduceRequest } from './generated/produce-request.js';
import { createPartitionProduceResponse, createProduceResponse, encodeProduceResponse } from './generated/produce-response.js';
import { Reader } from './reader.js';
import { listBatches, readBatchHeader, stampIdempotence, verifyCrc } from './record-batch.js';
import { Writer } from './writer.js';

const require = createRequire(import.meta.url);
/* eslint-disable @typescript-eslint/no-explicit-any */
const produceV3: any = require('kafkajs/src/protocol/requests/produce/v3/request');
const produceV3Response: any = require('kafkajs/src/protocol/requests/produce/v3/response');
const metadataV5Request: any = require('kafkajs/src/protocol/requests/metadata/v5/request');
const metadataV5Response: any = require('kafkajs/src/protocol/requests/metadata/v5/response');
const apiVersionsV2Response: any = require('kafkajs/src/protocol/requests/apiVersions/v2/response');
const batchDecoder: any = require('kafkajs/src/protocol/recordBatch/v0/decoder');
const KDecoder: any = require('kafkajs/src/protocol/decoder');
const Long: any = require('kafkajs/src/utils/long');
const { Types: Compression }: any = require('kafkajs/src/protocol/message/compression');

const messages = [
  { key: 'k1', value: 'hello', timestamp: 1700000000000, headers: { h: 'v' } },
  { key: null, value: 'world', timestamp: 1700000000005 },
];

async function kafkajsProduce(opts: Record<string, unknown>): Promise<Buffer> {
  const req = produceV3({
    acks: -1,
    timeout: 30000,
    topicData: [
      { topic: 'orders', partitions: [{ partition: 0, messages }] },
      { topic: 'payments', partitions: [{ partition: 2, messages: messages.slice(0, 1) }, { partition: 3, messages }] },
    ],
    ...opts,
  });
  return (await req.encode()).buffer as Buffer;
}

function w(fn: (w: Writer) => void): Buffer {
  const wr = new Writer(64);
  fn(wr);
  return Buffer.from(wr.toBuffer());
}

describe('kafkajs Produce v3 request', () => {
  test('decodes, and re-encodes to identical bytes', async () => {
    for (const compression of [Compression.None, Compression.GZIP]) {
      const bytes = await kafkajsProduce({ compression });
      const m = decodeProduceRequest(new Reader(bytes), 3);
      expect(m.transactionalId).toBeNull();
      expect(m.acks).toBe(-1);
      expect(m.timeoutMs).toBe(30000);
      expect(m.topicData.map((t) => [t.name, t.partitionData.map((p) => p.index)])).toEqual([
        ['orders', [0]],
        ['payments', [2, 3]],
      ]);
      expect(w((x) => encodeProduceRequest(x, m, 3)).equals(bytes)).toBe(true);
      for (const t of m.topicData) {
        for (const p of t.partitionData) {
          const batches = listBatches(p.records!);
          expect(batches).toHaveLength(1);
          const h = readBatchHeader(p.records!);
          expect(verifyCrc(p.records!)).toBe(true); // kafkajs' own CRC-32C agrees with ours
          expect(h).toMatchObject({ producerId: -1n, compression: compression === Compression.GZIP ? 1 : 0 }); // readBatchHeader checked the magic (2)
          expect(h.recordsCount).toBe(h.lastOffsetDelta + 1);
        }
      }
    }
  });

  test('stamping a kafkajs batch equals what kafkajs writes as an idempotent producer', async () => {
    const plain = await kafkajsProduce({});
    const idem = await kafkajsProduce({ producerId: Long.fromNumber(31337), producerEpoch: 2 });
    // kafkajs numbers each partition's batch from firstSequence (0 by default)
    const m = decodeProduceRequest(new Reader(plain), 3);
    for (const t of m.topicData) for (const p of t.partitionData) stampIdempotence(p.records!, 31337n, 2, 0);
    expect(plain.toString('hex')).toBe(idem.toString('hex'));

    // and kafkajs reads the stamped header back
    const recs = m.topicData[1]!.partitionData[1]!.records!;
    const decoded = await batchDecoder(new KDecoder(recs));
    expect(decoded).toMatchObject({ producerId: '31337', producerEpoch: 2, firstSequence: 0, lastOffsetDelta: 1 });
    expect(decoded.records.map((r: any) => r.value.toString())).toEqual(['hello', 'world']);
  });
});

describe('kafkajs Metadata v5', () => {
  test('request encoded by kafkajs decodes', async () => {
    const bytes = (await metadataV5Request({ topics: ['orders', 'payments'], allowAutoTopicCreation: false }).encode()).buffer as Buffer;
    const m = decodeMetadataRequest(new Reader(bytes), 5);
    expect(m.topics!.map((t) => t.name)).toEqual(['orders', 'payments']);
    expect(m.allowAutoTopicCreation).toBe(false);
    expect(w((x) => encodeMetadataRequest(x, m, 5)).equals(bytes)).toBe(true);
    const none = (await metadataV5Request({ topics: [] }).encode()).buffer as Buffer;
    // kafkajs sends an empty list as null (= all topics)
    expect(decodeMetadataRequest(new Reader(none), 5).topics).toBeNull();
  });

  test('response we encode decodes with kafkajs', async () => {
    const m = createMetadataResponse();
    m.throttleTimeMs = 4;
    m.brokers = [
      { nodeId: 1, host: '127.0.0.1', port: 19092, rack: 'a', _tagged: undefined },
      { nodeId: 2, host: '127.0.0.1', port: 19093, rack: null, _tagged: undefined },
    ];
    m.clusterId = 'cid';
    m.controllerId = 2;
    m.topics = [
      {
        errorCode: 0,
        name: 'orders',
        topicId: Buffer.alloc(16),
        isInternal: false,
        partitions: [{ errorCode: 0, partitionIndex: 0, leaderId: 1, leaderEpoch: 3, replicaNodes: [1, 2], isrNodes: [1, 2], offlineReplicas: [], _tagged: undefined }],
        topicAuthorizedOperations: -2147483648,
        _tagged: undefined,
      },
    ];
    const bytes = w((x) => encodeMetadataResponse(x, m, 5));
    const k = await metadataV5Response.decode(bytes);
    expect(k.throttleTime).toBe(4);
    expect(k.brokers).toEqual([
      { nodeId: 1, host: '127.0.0.1', port: 19092, rack: 'a' },
      { nodeId: 2, host: '127.0.0.1', port: 19093, rack: null },
    ]);
    expect(k.clusterId).toBe('cid');
    expect(k.controllerId).toBe(2);
    expect(k.topicMetadata[0]).toMatchObject({ topic: 'orders', isInternal: false });
    expect(k.topicMetadata[0].partitionMetadata[0]).toMatchObject({ partitionId: 0, leader: 1, replicas: [1, 2], isr: [1, 2], offlineReplicas: [] });
    // our decoder reads it back too (leaderEpoch is v7+, so it falls back to the default)
    expect(decodeMetadataResponse(new Reader(bytes), 5).topics[0]!.partitions[0]!.leaderEpoch).toBe(-1);
  });
});

describe('kafkajs response decoders read what we encode', () => {
  test('ApiVersions v2', async () => {
    const m = createApiVersionsResponse();
    m.apiKeys = [
      { apiKey: 0, minVersion: 3, maxVersion: 13, _tagged: undefined },
      { apiKey: 18, minVersion: 0, maxVersion: 4, _tagged: undefined },
    ];
    m.throttleTimeMs = 7;
    const bytes = w((x) => encodeApiVersionsResponse(x, m, 2));
    const k = await apiVersionsV2Response.decode(bytes);
    expect(k.errorCode).toBe(0);
    expect(k.apiVersions).toEqual([
      { apiKey: 0, minVersion: 3, maxVersion: 13 },
      { apiKey: 18, minVersion: 0, maxVersion: 4 },
    ]);
    expect(k.clientSideThrottleTime).toBe(7);
    expect(decodeApiVersionsResponse(new Reader(bytes), 2).apiKeys).toEqual(m.apiKeys);
  });

  test('Produce v3', async () => {
    const m = createProduceResponse();
    const p = createPartitionProduceResponse();
    p.index = 3;
    p.baseOffset = 9007199254740993n; // beyond 2^53: must survive as int64
    m.responses = [{ name: 'payments', topicId: Buffer.alloc(16), partitionResponses: [p], _tagged: undefined }];
    m.throttleTimeMs = 1;
    const k = await produceV3Response.decode(w((x) => encodeProduceResponse(x, m, 3)));
    expect(k).toEqual({
      topics: [{ topicName: 'payments', partitions: [{ partition: 3, errorCode: 0, baseOffset: '9007199254740993', logAppendTime: '-1' }] }],
      throttleTime: 1,
    });
  });
});
