// What only produce traffic needs, loaded on its first use rather than at start-up: CRC-32C
// and xxHash from native addons, and node:zlib for gzip batches. A sidecar that has not seen
// a produce request yet (or serves a pod that only consumes) does not carry them: ~6 MiB of
// resident memory for the two addons, ~1-2 MiB for zlib's binding.
import { requireCjs } from '../../api/require-cjs.js';

type Crc32 = typeof import('@node-rs/crc32');
type Xxhash = typeof import('@node-rs/xxhash');

let crc: Crc32['crc32c'] | undefined;
let xxh: Xxhash['xxh3']['xxh128'] | undefined;
let xxh64bit: Xxhash['xxh64'] | undefined;

/** CRC-32C (Castagnoli) of `input`, as the addon returns it (apply `>>> 0` for the unsigned value). */
export function crc32c(input: Uint8Array): number {
  crc ??= (requireCjs('@node-rs/crc32') as Crc32).crc32c;
  return crc(input);
}

/** xxh3's 128-bit hash of `input` with `seed`. */
export function xxh128(input: Uint8Array, seed: bigint): bigint {
  xxh ??= (requireCjs('@node-rs/xxhash') as Xxhash).xxh3.xxh128;
  return xxh(input, seed);
}

/** XXH64 of `input` with `seed` (the `exact` dedup key: ~8x faster than this addon's xxh3). */
export function xxh64(input: Uint8Array, seed: bigint): bigint {
  xxh64bit ??= (requireCjs('@node-rs/xxhash') as Xxhash).xxh64;
  return xxh64bit(input, seed);
}

/** node:zlib, for gzip batches. */
export function zlib(): typeof import('node:zlib') {
  return requireCjs('node:zlib') as typeof import('node:zlib');
}
