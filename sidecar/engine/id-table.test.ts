import { describe, expect, test } from 'vitest';
import { IdTable } from './id-table.js';

/** A seeded generator (the same operations every run). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('IdTable', () => {
  test('answers as a Map does: ids mostly in order, some held past a ring of newer ones, some added out of order', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const r = rng(seed);
      const table = new IdTable<string>();
      const model = new Map<number, string>();
      const live: number[] = [];
      const wrong: string[] = [];
      let next = 1;
      for (let step = 0; step < 20_000; step++) {
        const x = r();
        if (x < 0.45 || live.length === 0) {
          // A new id, now and then after a gap; rarely one out of order (restore).
          const id = x < 0.01 && next > 100 ? next - 1 - Math.floor(r() * (r() < 0.5 ? 50 : next - 1)) : (next += r() < 0.05 ? 1 + Math.floor(r() * 3000) : 1) - 1;
          if (model.has(id)) continue;
          table.set(id, `v${id}`);
          model.set(id, `v${id}`);
          live.push(id);
        } else {
          // Mostly the oldest goes; some stay (held) while thousands of newer ones come and go.
          const i = r() < 0.7 ? 0 : Math.floor(r() * live.length);
          if (r() < 0.02) continue;
          const [id] = live.splice(i, 1);
          table.delete(id);
          model.delete(id);
        }
        if (step % 97 === 0) for (let id = Math.max(0, next - 3000); id < next + 5; id++) if (table.get(id) !== model.get(id)) wrong.push(`seed ${seed} step ${step} id ${id}`);
      }
      expect(wrong).toEqual([]);
      for (const id of live) expect(table.get(id)).toBe(model.get(id));
      for (const id of live) table.delete(id);
      for (const id of live) expect(table.get(id)).toBeUndefined();
    }
  });
});
