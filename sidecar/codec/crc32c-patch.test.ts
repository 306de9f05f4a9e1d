import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { crc32c } from '@node-rs/crc32';
import { patchCrc32c } from './crc32c-patch.js';

describe('patchCrc32c', () => {
  test('property: equals the CRC-32C of the changed buffer computed from scratch', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 1, maxLength: 3000 }),
        fc.nat(),
        fc.uint8Array({ minLength: 1, maxLength: 20 }),
        (data, at, patch) => {
          const buf = Buffer.from(data);
          const off = at % buf.length;
          const after = Buffer.from(patch.subarray(0, buf.length - off));
          const before = Buffer.from(buf.subarray(off, off + after.length));
          const original = Buffer.from(buf);
          const crc = crc32c(buf) >>> 0;
          after.copy(buf, off);
          expect(patchCrc32c(crc, before, after, buf.length - off - after.length)).toBe(crc32c(buf) >>> 0);
          // The changed bytes read in place in the whole buffer (what stamping does).
          expect(patchCrc32c(crc, original, after, buf.length - off - after.length, off)).toBe(crc32c(buf) >>> 0);
        },
      ),
      { numRuns: 500 },
    );
  });

  test('long tails (the zeros operator over many bits of the length)', () => {
    for (const size of [64, 4096, 16_384, 1_000_003, 8 * 1024 * 1024]) {
      const buf = Buffer.alloc(size, 0x5a);
      buf.writeUInt32BE(size, 0);
      const crc = crc32c(buf) >>> 0;
      const before = Buffer.from(buf.subarray(3, 17));
      const after = Buffer.alloc(14, 0xc3);
      after.copy(buf, 3);
      expect(patchCrc32c(crc, before, after, size - 17)).toBe(crc32c(buf) >>> 0);
    }
  });

});
