// Cost of the dedup fingerprints (idempotence/fingerprint.ts) against SHA-256 of the same
// records section, on batches shaped like the Java client's default (16 KiB, 100 records) and
// a 1 MiB one. Best of 5 rounds (the machine is shared). Usage: node dist/bench/fingerprint.js
import { createHash } from 'node:crypto';
import { Writer } from '../sidecar/codec/writer.js';
import { contentFingerprint, exactFingerprint } from '../sidecar/idempotence/fingerprint.js';

function batchOf(n: number, valueBytes: number): Buffer {
  const body = new Writer(n * (valueBytes + 16));
  for (let i = 0; i < n; i++) {
    const rec = new Writer(valueBytes + 16);
    rec.int8(0);
    rec.varlong(BigInt(i));
    rec.varint(i);
    rec.varint(-1);
    rec.varint(valueBytes);
    rec.raw(Buffer.alloc(valueBytes, 97 + (i % 26)));
    rec.varint(0);
    const r = rec.toBuffer();
    body.varint(r.length);
    body.raw(r);
  }
  const section = body.toBuffer();
  const b = Buffer.alloc(61 + section.length);
  b.writeInt8(2, 16);
  b.writeInt32BE(n - 1, 23);
  b.writeInt32BE(n, 57);
  section.copy(b, 61);
  return b;
}

function bestNsPerCall(f: () => unknown, bytes: number): number {
  const calls = Math.max(50, Math.floor(64e6 / bytes));
  for (let i = 0; i < calls; i++) f();
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const t = process.hrtime.bigint();
    for (let i = 0; i < calls; i++) f();
    best = Math.min(best, Number(process.hrtime.bigint() - t) / calls);
  }
  return best;
}

for (const [n, size] of [
  [100, 150],
  [1000, 1000],
] as const) {
  const b = batchOf(n, size);
  const sha = bestNsPerCall(() => createHash('sha256').update(b.subarray(61)).digest(), b.length);
  const rows: Array<[string, number]> = [
    ['sha256 of the records', sha],
    ['exact (2 x xxh64)', bestNsPerCall(() => exactFingerprint(b), b.length)],
    ['content (xxh3-128)', bestNsPerCall(() => contentFingerprint(b, { maxDecompressedBytes: 1 << 24 }), b.length)],
  ];
  for (const [name, ns] of rows) {
    console.log(`${String(b.length).padStart(8)} B  ${name.padEnd(22)} ${(ns / 1000).toFixed(1).padStart(8)} us  ${(b.length / ns).toFixed(2).padStart(6)} GB/s  ${(sha / ns).toFixed(1)}x sha256`);
  }
}
