import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { JournalWriter, MAGIC, frame, scanJournal } from './journal.js';

const dirs: string[] = [];
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'idempo-journal-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  vi.restoreAllMocks();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const p = (s: string): Buffer => Buffer.from(s);
const file = (...records: Buffer[]): Buffer => Buffer.concat([MAGIC, ...records.map(frame)]);
const texts = (bufs: Buffer[]): string[] => bufs.map((b) => b.toString());

function writer(f: string, snapshot: () => Buffer[] = () => [], minCompactBytes?: number): { w: JournalWriter; errors: string[] } {
  const errors: string[] = [];
  const scan = fs.existsSync(f) ? scanJournal(fs.readFileSync(f)) : { validLength: 0 };
  const w = new JournalWriter(f, scan.validLength, { snapshot, onError: (op, e) => errors.push(`${op}: ${e.message}`), minCompactBytes });
  return { w, errors };
}

describe('scanJournal', () => {
  it('reads every record of a whole file', () => {
    const s = scanJournal(file(p('a'), p(''), p('ccc')));
    expect(texts(s.payloads)).toEqual(['a', '', 'ccc']);
    expect(s.problem).toBeNull();
  });

  it('cuts off a record torn by a crash at any byte, keeping the records before it', () => {
    const whole = file(p('first'), p('second record'));
    const firstEnd = MAGIC.length + frame(p('first')).length;
    for (let cut = firstEnd + 1; cut < whole.length; cut++) {
      const s = scanJournal(whole.subarray(0, cut));
      expect(texts(s.payloads)).toEqual(['first']);
      expect(s.problem).toEqual({ kind: 'torn', at: firstEnd });
      expect(s.validLength).toBe(firstEnd);
    }
    // Zeros where the record should be (the file grew, the data never reached the disk).
    const zeros = Buffer.concat([whole.subarray(0, firstEnd), Buffer.alloc(40)]);
    expect(scanJournal(zeros).problem).toEqual({ kind: 'torn', at: firstEnd });
    expect(scanJournal(MAGIC.subarray(0, 3)).problem).toEqual({ kind: 'torn', at: 0 });
  });

  it('reports a flipped bit in a payload as corruption (bad CRC), not as a torn tail', () => {
    const whole = file(p('first'), p('second'));
    const bad = Buffer.from(whole);
    bad[bad.length - 2] ^= 0x01; // inside the LAST record: still corruption, its length is whole
    expect(scanJournal(bad).problem).toMatchObject({ kind: 'corrupt', reason: 'bad CRC-32C' });
    const mid = Buffer.from(whole);
    mid[MAGIC.length + 13] ^= 0x80;
    expect(scanJournal(mid).problem).toMatchObject({ kind: 'corrupt', at: MAGIC.length });
  });

  it('reports a damaged length field and a foreign file as corruption', () => {
    const whole = file(p('first'), p('second'));
    const bad = Buffer.from(whole);
    bad[MAGIC.length + 3] ^= 0x04;
    expect(scanJournal(bad).problem).toMatchObject({ kind: 'corrupt', reason: 'bad record length' });
    expect(scanJournal(Buffer.from('{"not":"a journal"}')).problem).toMatchObject({ kind: 'corrupt', reason: 'bad magic' });
  });
});

describe('JournalWriter', () => {
  it('makes appended records durable; a new writer continues after them', async () => {
    const f = path.join(tmp(), 'journal');
    const { w } = writer(f);
    w.append(p('one'));
    w.append(p('two'));
    await w.durable();
    expect(texts(scanJournal(fs.readFileSync(f)).payloads)).toEqual(['one', 'two']);
    await w.close();
    const again = writer(f).w;
    again.append(p('three'));
    await again.durable();
    expect(texts(scanJournal(fs.readFileSync(f)).payloads)).toEqual(['one', 'two', 'three']);
    await again.close();
  });

  it('writes a turn of thousands of records (more than one writev) whole and in order', async () => {
    const f = path.join(tmp(), 'journal');
    const { w } = writer(f);
    const want = Array.from({ length: 3000 }, (_, i) => `r${i}`.padEnd(1 + (i % 50), '.'));
    for (const x of want) w.append(p(x));
    w.append(Buffer.alloc(0));
    await w.durable();
    const s = scanJournal(fs.readFileSync(f));
    expect(s.problem).toBeNull();
    expect(texts(s.payloads)).toEqual([...want, '']);
    await w.close();
  });

  it('cuts a torn tail off before appending after it', async () => {
    const f = path.join(tmp(), 'journal');
    const whole = file(p('kept'), p('torn away'));
    fs.writeFileSync(f, whole.subarray(0, whole.length - 3));
    const { w } = writer(f);
    w.append(p('next'));
    await w.durable();
    const s = scanJournal(fs.readFileSync(f));
    expect(texts(s.payloads)).toEqual(['kept', 'next']);
    expect(s.problem).toBeNull();
    await w.close();
  });

  it('group-commits the records of one turn, and orders durable() waiters', async () => {
    const f = path.join(tmp(), 'journal');
    const { w } = writer(f);
    const order: number[] = [];
    w.append(p('a'));
    const d1 = w.durable().then(() => order.push(1));
    w.append(p('b'));
    const d2 = w.durable().then(() => order.push(2));
    await Promise.all([d1, d2]);
    w.append(p('c'));
    const d3 = w.durable().then(() => order.push(3));
    await d3;
    expect(order).toEqual([1, 2, 3]);
    expect(texts(scanJournal(fs.readFileSync(f)).payloads)).toEqual(['a', 'b', 'c']);
    await w.close();
  });

  it('compacts into the snapshot (write, fsync, rename) once the file outgrows it', async () => {
    const dir = tmp();
    const f = path.join(dir, 'journal');
    let live = ['state-0'];
    const { w } = writer(f, () => live.map(p), 1024);
    for (let i = 1; i <= 40; i++) {
      live = [`state-${i}`];
      w.append(Buffer.alloc(100, i));
      await w.durable();
    }
    const s = scanJournal(fs.readFileSync(f));
    expect(s.problem).toBeNull();
    // The file was replaced by a snapshot at least once: it starts with a state, not with record 1.
    expect(s.payloads[0].toString()).toMatch(/^state-\d+$/);
    expect(fs.statSync(f).size).toBeLessThan(40 * 112);
    expect(fs.readdirSync(dir)).toEqual(['journal']); // no temp file left behind
    w.requestCompaction();
    await w.durable();
    expect(texts(scanJournal(fs.readFileSync(f)).payloads)).toEqual(['state-40']);
    await w.close();
  });

  it('reports a write error once, removes the file before any waiter goes on, and stops waiting', async () => {
    const dir = tmp();
    const f = path.join(dir, 'journal');
    const { w, errors } = writer(f);
    w.append(p('kept'));
    await w.durable();
    // FAKE DISK FAULT (an I/O error cannot be produced for real here): writev fails with EIO.
    vi.spyOn(fs, 'writev').mockImplementation(((...args: unknown[]) => {
      const cb = args[args.length - 1] as (err: Error) => void;
      setImmediate(() => cb(Object.assign(new Error('EIO: i/o error, writev'), { code: 'EIO' })));
    }) as unknown as typeof fs.writev);
    w.append(p('x'));
    const seen: string[][] = [];
    await w.durable().then(() => seen.push(fs.readdirSync(dir)));
    w.append(p('y'));
    await w.durable();
    expect(seen).toEqual([[]]);
    expect(errors).toEqual(['write: EIO: i/o error, writev']);
    expect(w.stopped).toBeNull();
    await w.close();
  });
});
