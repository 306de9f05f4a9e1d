// createPatch is correct when applying its ops to the original gives the target, for any
// pair of JSON values; plus the pointer escaping RFC 6901 asks for.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { applyPatch, createPatch, escapePointer } from './patch.js';

const key = fc.oneof(fc.constantFrom('a', 'b', 'c', 'x/y', 'm~n', '~1', ''), fc.string({ maxLength: 3 }));
const { json } = fc.letrec((tie) => ({
  json: fc.oneof({ depthSize: 'small', withCrossShrink: true }, fc.constant(null), fc.boolean(), fc.integer(), fc.string({ maxLength: 3 }), tie('arr'), tie('obj')),
  arr: fc.array(tie('json'), { maxLength: 4 }),
  obj: fc.dictionary(key, tie('json'), { maxKeys: 4 }),
}));

describe('createPatch', () => {
  it('turns any JSON value into any other', () => {
    fc.assert(
      fc.property(json, json, (a, b) => {
        expect(applyPatch(a, createPatch(a, b))).toEqual(b);
      }),
      { numRuns: 2000 },
    );
  });

  it('turns a value into a small edit of itself', () => {
    const edit = fc.record({ base: fc.array(json, { maxLength: 6 }), at: fc.nat(6), item: json, drop: fc.boolean() });
    fc.assert(
      fc.property(edit, ({ base, at, item, drop }) => {
        const b = [...base];
        if (drop) b.splice(at % (b.length || 1), 1);
        else b.splice(at % (b.length + 1), 0, item);
        expect(applyPatch({ l: base }, createPatch({ l: base }, { l: b }))).toEqual({ l: b });
      }),
    );
  });

  it('is empty for equal values', () => {
    expect(createPatch({ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] })).toEqual([]);
  });

  it('inserts at the front of a list with one add', () => {
    expect(createPatch({ l: [{ n: 'a' }, { n: 'b' }] }, { l: [{ n: 's' }, { n: 'a' }, { n: 'b' }] })).toEqual([
      { op: 'add', path: '/l/0', value: { n: 's' } },
    ]);
  });

  it('escapes ~ and / in keys', () => {
    expect(escapePointer('a/b~c')).toBe('a~1b~0c');
    expect(createPatch({ m: {} }, { m: { 'prometheus.io/scrape': 'true', '~x': 1 } })).toEqual([
      { op: 'add', path: '/m/prometheus.io~1scrape', value: 'true' },
      { op: 'add', path: '/m/~0x', value: 1 },
    ]);
  });

  it('drops undefined fields like JSON does', () => {
    expect(createPatch({ a: 1 }, { a: 1, b: undefined })).toEqual([]);
  });
});
