// CRC-32C of a buffer after a few of its bytes changed, from its CRC before, without reading the
// rest of the buffer again. CRC is linear over GF(2): crc(new) = crc(old) ^ raw(delta), where
// raw is the CRC without its initial value and final xor, of a message that is zero except for
// old ^ new at the changed bytes. Zeros before the change leave raw at 0; the zeros after it
// multiply it by x^(8n) mod P (zlib's crc32_combine does the same). An old CRC that was wrong
// stays wrong by the same bits: damage is never hidden.

/** CRC-32C (Castagnoli), reflected. */
const POLY = 0x82f63b78;

/**
 * The byte table, and X2N[k] = x^(2^k) mod P. Made on first use, not at load: their loops would
 * run at start-up, enough for V8 to wake its optimising compiler (~2.5 MiB of its code resident)
 * in a sidecar that may never stamp a batch.
 */
let tables: { TABLE: Uint32Array; X2N: Uint32Array } | undefined;

function makeTables(): { TABLE: Uint32Array; X2N: Uint32Array } {
  const TABLE = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    TABLE[i] = c;
  }
  const X2N = new Uint32Array(32);
  let p = 0x40000000; // x^1
  X2N[0] = p;
  for (let k = 1; k < 32; k++) X2N[k] = p = multModP(p, p);
  return { TABLE, X2N };
}

/** a(x) * b(x) mod P, reflected (zlib's multmodp). */
function multModP(a: number, b: number): number {
  let m = 0x80000000;
  let p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLY : b >>> 1;
  }
  return p >>> 0;
}

/** x^(8n) mod P: what n zero bytes do to a raw CRC. */
function zerosOperator(X2N: Uint32Array, n: number): number {
  let p = 0x80000000; // x^0
  for (let k = 3; n > 0; n = Math.floor(n / 2), k++) if (n % 2 === 1) p = multModP(X2N[k & 31], p);
  return p;
}

/** The last tail length and its operator: batches of one producer mostly have the same size. */
let lastTail = -1;
let lastOperator = 0;

/**
 * The CRC-32C of a buffer whose CRC was `crc`, after the bytes `before` (from `beforeAt`, as many
 * as `after` holds) became `after`, with `tail` unchanged bytes following them up to the
 * buffer's end.
 */
export function patchCrc32c(crc: number, before: Uint8Array, after: Uint8Array, tail: number, beforeAt = 0): number {
  const { TABLE, X2N } = (tables ??= makeTables());
  let raw = 0;
  for (let i = 0; i < after.length; i++) raw = TABLE[(raw ^ before[beforeAt + i] ^ after[i]) & 0xff] ^ (raw >>> 8);
  if (raw === 0) return crc >>> 0;
  if (tail !== lastTail) {
    lastOperator = zerosOperator(X2N, tail);
    lastTail = tail;
  }
  return (crc ^ multModP(lastOperator, raw >>> 0)) >>> 0;
}
