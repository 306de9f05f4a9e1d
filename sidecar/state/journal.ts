// The on-disk format of the state directory: one append-only file of checksummed records, and
// the group-committing writer that makes records durable before the caller acts on them.
//
// File: 8-byte magic, then records, each
//   u32 length | u32 ~length | u32 CRC-32C(payload) | payload      (big-endian)
// The complemented length tells a corrupt length field (a bad file) from a record cut short by a
// crash (a torn tail: every byte written before the crash is there, the rest is missing or zero).
// A torn tail is cut off: the writer only acts on records after they were fdatasync'ed, so what
// was torn was never acted on. Anything else that does not check out is corruption.
import fs from 'node:fs';
import path from 'node:path';
import { crc32c } from '../codec/on-demand.js';
import { requireCjs } from '../../api/require-cjs.js';

// node:fs/promises only with --state-dir, on the first compaction: loading it loads readline and
// the REPL's history module too (0.7 MiB of idle RSS in every sidecar otherwise).
const fsp = (): typeof import('node:fs/promises') => requireCjs('node:fs/promises') as typeof import('node:fs/promises');

// 02: per-partition producer identities (records.ts `identity`). A file of another version does not
// check out: set aside, fresh start (a new producer id is safe, a misread sequence is not).
export const MAGIC = Buffer.from('IDMPST02', 'latin1');
const HEAD = 12;
/** No single record is larger (a batch is bounded by --max-frame-bytes, at most 1 GiB). */
const MAX_RECORD = 1 << 30;

export type ScanProblem = { kind: 'torn'; at: number } | { kind: 'corrupt'; at: number; reason: string };

export interface ScanResult {
  payloads: Buffer[];
  /** Bytes up to the end of the last good record (where appends may continue). */
  validLength: number;
  problem: ScanProblem | null;
}

/** Reads every record of a journal file's contents (pure). */
export function scanJournal(buf: Buffer): ScanResult {
  if (buf.length < MAGIC.length) {
    // A crash while creating the file: nothing was ever acted on.
    return MAGIC.subarray(0, buf.length).equals(buf) ? { payloads: [], validLength: 0, problem: buf.length > 0 ? { kind: 'torn', at: 0 } : null } : corrupt(0, 'bad magic');
  }
  if (!buf.subarray(0, MAGIC.length).equals(MAGIC)) return corrupt(0, 'bad magic');
  const payloads: Buffer[] = [];
  let at = MAGIC.length;
  while (at < buf.length) {
    const rest = buf.length - at;
    if (rest < HEAD || allZero(buf, at)) return { payloads, validLength: at, problem: { kind: 'torn', at } };
    const len = buf.readUInt32BE(at);
    if ((~len >>> 0) !== buf.readUInt32BE(at + 4) || len > MAX_RECORD) return { payloads, validLength: at, problem: { kind: 'corrupt', at, reason: 'bad record length' } };
    if (rest < HEAD + len) return { payloads, validLength: at, problem: { kind: 'torn', at } };
    const payload = buf.subarray(at + HEAD, at + HEAD + len);
    if (crc32c(payload) >>> 0 !== buf.readUInt32BE(at + 8)) return { payloads, validLength: at, problem: { kind: 'corrupt', at, reason: 'bad CRC-32C' } };
    payloads.push(payload);
    at += HEAD + len;
  }
  return { payloads, validLength: at, problem: null };

  function corrupt(at: number, reason: string): ScanResult {
    return { payloads: [], validLength: 0, problem: { kind: 'corrupt', at, reason } };
  }
}

function allZero(buf: Buffer, from: number): boolean {
  for (let i = from; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}

/** The 12 bytes written before a payload. */
export function recordHead(payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(HEAD);
  out.writeUInt32BE(payload.length, 0);
  out.writeUInt32BE(~payload.length >>> 0, 4);
  out.writeUInt32BE(crc32c(payload) >>> 0, 8);
  return out;
}

/** One record as it is written to the file. */
export function frame(payload: Buffer): Buffer {
  return Buffer.concat([recordHead(payload), payload]);
}

/**
 * What the writer did after its first failed write (README "When a write fails"): `removed` — the
 * journal is unlinked and the directory fsync'ed, so a restart starts fresh, and `durable()`
 * resolves from then on (sends go out without restart safety); `stopped` — the file could not be
 * removed, so it may still be restored: `durable()` rejects with JournalStoppedError from then on
 * and nothing whose stamp is not on disk may be sent.
 */
export type AfterWriteError = { kind: 'removed' } | { kind: 'stopped'; err: Error };

export class JournalStoppedError extends Error {
  constructor(readonly removeError: Error) {
    super(`the state journal failed and could not be removed (${removeError.message}): nothing more may be sent under the journalled producer id`);
  }
}

export interface JournalOptions {
  /** Called once, on the first failed write; the journal stops (see AfterWriteError). */
  onError: (op: string, err: Error, after: AfterWriteError) => void;
  /** The whole live state as payloads, for compaction (called synchronously, between turns). */
  snapshot: () => Buffer[];
  /** Compact when the file grows past max(minCompactBytes, 4 × the last snapshot). Default 16 MiB. */
  minCompactBytes?: number;
  /** The file's size after every flush (for idempo_state_journal_bytes). */
  onSize?: (bytes: number) => void;
}

/**
 * Appends records; `durable()` resolves once everything appended before the call is on disk.
 * Group commit: all records appended in one event-loop turn go out in one write + fdatasync;
 * records appended while that runs go in the next one. When the file has grown enough, a flush
 * writes the snapshot to a new file instead (write + fsync + rename + fsync of the directory),
 * which replaces every record appended so far.
 */
export class JournalWriter {
  private fd: number;
  private size: number;
  private lastSnapshotSize = 0;
  private pending: Buffer[] = [];
  private appended = 0;
  private done = 0;
  private waiters: Array<{ target: number; resolve: () => void; reject: (err: Error) => void }> = [];
  private busy = false;
  private scheduled = false;
  private failed = false;
  /** Set when the failed journal could not be removed: durable() rejects with it. */
  private stoppedBy: JournalStoppedError | null = null;
  private closed = false;
  private compactNext = false;
  private readonly minCompact: number;

  /** Opens `file` for appending after `validLength` bytes (a torn tail is cut off here). */
  constructor(
    readonly file: string,
    validLength: number,
    private readonly opts: JournalOptions,
  ) {
    this.minCompact = opts.minCompactBytes ?? 16 << 20;
    if (validLength < MAGIC.length) {
      writeFileDurably(file, [MAGIC]);
      validLength = MAGIC.length;
    }
    this.fd = fs.openSync(file, 'r+');
    fs.ftruncateSync(this.fd, validLength);
    fs.fsyncSync(this.fd);
    this.size = validLength;
  }

  get bytes(): number {
    return this.size;
  }

  /** `payload` is written later, without a copy: the caller must not change it afterwards. */
  append(payload: Buffer): void {
    if (this.failed || this.closed) return;
    this.pending.push(recordHead(payload), payload);
    this.appended++;
    this.schedule();
  }

  /**
   * Resolves when every record appended so far is durable; after a failed write, at once when the
   * journal was removed, and rejects (JournalStoppedError) when it could not be.
   */
  durable(): Promise<void> {
    if (this.stoppedBy) return Promise.reject(this.stoppedBy);
    if (this.done >= this.appended || this.failed) return Promise.resolve();
    const target = this.appended;
    return new Promise((resolve, reject) => this.waiters.push({ target, resolve, reject }));
  }

  /** Set once a failed journal could not be removed (then nothing unjournalled may be sent). */
  get stopped(): JournalStoppedError | null {
    return this.stoppedBy;
  }

  /** Replace the file by a snapshot at the next flush. */
  requestCompaction(): void {
    this.compactNext = true;
    this.appended++; // the snapshot is a write that durable() callers wait for
    this.schedule();
  }

  /** Stops writing (SIGTERM): waits for the flush in progress. */
  async close(): Promise<void> {
    await this.durable().catch(() => undefined);
    this.closed = true;
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }

  private schedule(): void {
    if (this.scheduled || this.busy) return;
    this.scheduled = true;
    // setImmediate: everything appended in this turn (and its microtasks) joins the same write.
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.busy || this.closed || this.failed) return;
    if (this.pending.length === 0 && !this.compactNext) return;
    this.busy = true;
    const target = this.appended;
    try {
      if (this.compactNext || this.size > Math.max(this.minCompact, 4 * this.lastSnapshotSize)) {
        this.compactNext = false;
        // The snapshot already contains what the pending records say.
        this.pending = [];
        const records = [MAGIC, ...this.opts.snapshot().map(frame)];
        const size = await replaceFileDurably(this.file, records);
        const old = this.fd;
        this.fd = fs.openSync(this.file, 'r+');
        fs.closeSync(old);
        this.size = size;
        this.lastSnapshotSize = size;
      } else {
        const parts = this.pending;
        this.pending = [];
        this.size += await writeAll(this.fd, parts, this.size);
        await fdatasync(this.fd);
      }
    } catch (err) {
      this.failed = true;
      // Before any waiter goes on: what the file now says is stale (records appended after it
      // will be sent unjournalled), and restoring it would reuse sequences under the same
      // producer id/epoch (a new batch acknowledged as a duplicate of a cached one, not written).
      const removeErr = this.removeFile();
      if (removeErr) this.stoppedBy = new JournalStoppedError(removeErr);
      this.opts.onError('write', err as Error, removeErr ? { kind: 'stopped', err: removeErr } : { kind: 'removed' });
    } finally {
      this.busy = false;
    }
    this.done = this.failed ? this.appended : target;
    this.opts.onSize?.(this.size);
    const ready = this.waiters.filter((w) => w.target <= this.done);
    this.waiters = this.waiters.filter((w) => w.target > this.done);
    for (const w of ready) {
      if (this.stoppedBy) w.reject(this.stoppedBy);
      else w.resolve();
    }
    if (this.pending.length > 0 || this.compactNext) this.schedule();
  }

  /**
   * After a failed write: unlink the journal (and a compaction's temp file) and fsync the
   * directory, so that a restart finds nothing and starts with a fresh producer id. Unlink needs
   * no free space. Synchronous: no waiter may run before it is done. Returns what failed, if anything.
   */
  private removeFile(): Error | null {
    try {
      if (this.fd >= 0) fs.closeSync(this.fd);
    } catch {
      // The descriptor is useless either way; the file's name is what matters.
    }
    this.fd = -1;
    try {
      for (const f of [this.file, `${this.file}.tmp`]) {
        try {
          fs.unlinkSync(f);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        }
      }
      const d = fs.openSync(path.dirname(this.file), 'r');
      try {
        fs.fsyncSync(d);
      } finally {
        fs.closeSync(d);
      }
      return null;
    } catch (err) {
      return err as Error;
    }
  }
}

/** writev of every part at `position` (in slices the kernel takes at once); returns the bytes written. */
async function writeAll(fd: number, parts: Buffer[], position: number): Promise<number> {
  let written = 0;
  let i = 0;
  let skip = 0; // bytes of parts[i] already written (after a short write)
  while (i < parts.length) {
    const slice = parts.slice(i, i + 512);
    if (skip > 0) slice[0] = slice[0].subarray(skip);
    const n = await new Promise<number>((resolve, reject) => fs.writev(fd, slice, position + written, (err, w) => (err ? reject(err) : resolve(w))));
    written += n;
    let left = n;
    while (i < parts.length && left >= parts[i].length - skip) {
      left -= parts[i].length - skip;
      skip = 0;
      i++;
    }
    skip += left;
  }
  return written;
}

function fdatasync(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (err) => (err ? reject(err) : resolve())));
}

/** write + fsync + rename + fsync(dir): the file is either the old one or the new one, whole. */
async function replaceFileDurably(file: string, chunks: Buffer[]): Promise<number> {
  const tmp = `${file}.tmp`;
  const h = await fsp().open(tmp, 'w');
  let size = 0;
  try {
    for (const c of chunks) {
      await h.write(c, 0, c.length, size);
      size += c.length;
    }
    await h.sync();
  } finally {
    await h.close();
  }
  await fsp().rename(tmp, file);
  const d = await fsp().open(path.dirname(file), 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
  return size;
}

/** The synchronous twin of replaceFileDurably, for start-up. */
export function writeFileDurably(file: string, chunks: Buffer[]): void {
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  try {
    for (const c of chunks) fs.writeSync(fd, c);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  const d = fs.openSync(path.dirname(file), 'r');
  try {
    fs.fsyncSync(d);
  } finally {
    fs.closeSync(d);
  }
}
