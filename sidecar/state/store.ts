// --state-dir: loads what the previous process left (at start-up, before any listener is bound)
// and journals every change the restart must see. Format and guarantees: ./README.md.
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log/log.js';
import type { SidecarMetrics } from '../metrics/metrics.js';
import { JournalWriter, scanJournal } from './journal.js';
import { decodeRecord, encodeRecord, replay, type RestoredState, type StateRecord } from './records.js';

export const JOURNAL_FILE = 'journal';

export interface OpenResult {
  store: StateStore;
  /** null when there was nothing (or nothing usable) to restore. */
  restored: RestoredState | null;
}

export class StateStore {
  private snapshotSource: () => StateRecord[] = () => [];

  private constructor(private readonly writer: JournalWriterLike) {}

  /**
   * Reads `dir` (created when missing). A torn tail is cut off; a file that does not check out is
   * renamed to journal.corrupt-<time> and the sidecar starts fresh: a new producer id is safe,
   * sequences continued from a wrong state are not.
   */
  static open(dir: string, deps: { log: Logger; metrics: SidecarMetrics; dedupWindowMs: number; minCompactBytes?: number; upstream?: string }): OpenResult {
    const { log, metrics } = deps;
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, JOURNAL_FILE);
    let restored: RestoredState | null = null;
    let validLength = 0;
    let result: 'fresh' | 'restored' | 'torn_tail' | 'corrupt' | 'other_upstream' = 'fresh';
    let buf: Buffer | null = null;
    try {
      buf = fs.readFileSync(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (buf) {
      const scan = scanJournal(buf);
      let problem = scan.problem?.kind === 'corrupt' ? `${scan.problem.reason} at byte ${scan.problem.at}` : null;
      if (!problem) {
        try {
          restored = replay(scan.payloads.map(decodeRecord), deps.dedupWindowMs);
          validLength = scan.validLength;
          result = scan.problem?.kind === 'torn' ? 'torn_tail' : 'restored';
          if (scan.problem?.kind === 'torn') {
            log.warn({ file, at: scan.problem.at, bytes: buf.length - scan.problem.at }, 'state journal ends in a torn record (a crash while writing it); cut off');
          }
        } catch (err) {
          problem = (err as Error).message;
        }
      }
      if (!problem && restored && deps.upstream !== undefined && restored.upstream !== null && restored.upstream !== deps.upstream) {
        // Producer ids are per cluster: another cluster's id could belong to someone else there.
        const aside = `${file}.other-upstream-${new Date().toISOString().replace(/[:.]/g, '-')}`;
        fs.renameSync(file, aside);
        log.warn({ file, movedTo: aside, was: restored.upstream, now: deps.upstream }, 'state journal belongs to other upstream servers: starting with a fresh producer id');
        restored = null;
        validLength = 0;
        result = 'other_upstream';
      }
      if (problem) {
        restored = null;
        result = 'corrupt';
        const aside = `${file}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
        fs.renameSync(file, aside);
        log.error({ file, movedTo: aside, problem }, 'state journal is corrupt: starting with a fresh producer id and no remembered batches');
      }
    }
    metrics.stateRestores.inc({ result });
    // Which cluster the state belongs to: the first record of the journal and of every compaction.
    const upstreamRecord = (): StateRecord[] => (deps.upstream !== undefined ? [{ type: 'upstream', upstream: deps.upstream }] : []);
    let store: StateStore;
    const writer = new JournalWriter(file, validLength, {
      minCompactBytes: deps.minCompactBytes,
      onSize: (bytes) => metrics.stateJournalBytes.set(bytes),
      snapshot: () => [...upstreamRecord(), ...store.snapshotSource()].map(encodeRecord),
      onError: (op, err, after) => {
        if (after.kind === 'removed') {
          metrics.stateWriteErrors.inc({ then: 'journal_removed' });
          log.error({ op, file, err: err.message }, 'cannot write the state journal: removed it (a restart starts with a fresh producer id); continuing WITHOUT restart safety');
        } else {
          metrics.stateWriteErrors.inc({ then: 'sends_stopped' });
          log.error(
            { op, file, err: err.message, removeErr: after.err.message },
            'cannot write the state journal, nor remove it: a restart could restore stale sequences, so upgrade mode stops stamping and sending (batches answered KAFKA_STORAGE_ERROR, retriable; /readyz not ready); restart the sidecar once the disk works',
          );
        }
      },
    });
    store = new StateStore(writer);
    for (const r of upstreamRecord()) store.append(r);
    metrics.stateJournalBytes.set(writer.bytes);
    if (restored) {
      const s = restored.sequencer;
      log.info(
        {
          dir,
          producerId: s.producer ? String(s.producer.producerId) : null,
          epoch: s.producer?.epoch ?? null,
          partitions: s.partitions.length,
          unfinishedBatches: restored.batches.size,
          dedupEntries: restored.dedup.length,
          brokers: restored.brokers.length,
        },
        'state restored',
      );
    }
    return { store, restored };
  }

  /** Where compaction takes the whole live state from. */
  setSnapshotSource(fn: () => StateRecord[]): void {
    this.snapshotSource = fn;
  }

  append(r: StateRecord): void {
    this.writer.append(encodeRecord(r));
  }

  /**
   * Resolves when every record appended so far is on disk (at once after a failed write whose
   * journal was removed); rejects when the journal failed and could not be removed (`stopped`).
   */
  durable(): Promise<void> {
    return this.writer.durable();
  }

  /** Why nothing more may be stamped or sent (README "When a write fails"), or null. */
  get stopped(): string | null {
    return this.writer.stopped?.message ?? null;
  }

  /** Rewrites the file from the live state (after a restore: drops what is finished). */
  compact(): void {
    this.writer.requestCompaction();
  }

  get bytes(): number {
    return this.writer.bytes;
  }

  close(): Promise<void> {
    return this.writer.close();
  }
}

type JournalWriterLike = Pick<JournalWriter, 'append' | 'durable' | 'requestCompaction' | 'bytes' | 'close' | 'stopped'>;
