// RFC 6902 JSON patch from a generic diff of two JSON values (the original and the
// mutated pod), plus applyPatch for tests and goldens. Patches are never hand-written.

export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };
export type PatchOp =
  | { op: 'add'; path: string; value: JsonValue }
  | { op: 'remove'; path: string }
  | { op: 'replace'; path: string; value: JsonValue };

/** RFC 6901: `~` → `~0`, then `/` → `~1`. */
export function escapePointer(seg: string): string {
  return seg.replace(/~/g, '~0').replace(/\//g, '~1');
}
function unescapePointer(seg: string): string {
  return seg.replace(/~1/g, '/').replace(/~0/g, '~');
}

const isObj = (v: unknown): v is { [k: string]: JsonValue } => typeof v === 'object' && v !== null && !Array.isArray(v);

function equal(a: JsonValue, b: JsonValue): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => equal(x, b[i]));
  if (isObj(a) && isObj(b)) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && equal(a[k], b[k]));
  }
  return false;
}

function diffInto(a: JsonValue, b: JsonValue, path: string, ops: PatchOp[]): void {
  if (equal(a, b)) return;
  if (isObj(a) && isObj(b)) {
    for (const k of Object.keys(a)) if (!Object.hasOwn(b, k)) ops.push({ op: 'remove', path: `${path}/${escapePointer(k)}` });
    for (const [k, v] of Object.entries(b)) {
      const p = `${path}/${escapePointer(k)}`;
      if (!Object.hasOwn(a, k)) ops.push({ op: 'add', path: p, value: v });
      else diffInto(a[k], v, p, ops);
    }
    return;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    // Keep the common prefix and suffix (an insertion at the front is one add), pair up
    // the middle element by element, then add or remove what is left over.
    let pre = 0;
    while (pre < a.length && pre < b.length && equal(a[pre], b[pre])) pre++;
    let suf = 0;
    while (suf < a.length - pre && suf < b.length - pre && equal(a[a.length - 1 - suf], b[b.length - 1 - suf])) suf++;
    const aMid = a.length - pre - suf;
    const bMid = b.length - pre - suf;
    const paired = Math.min(aMid, bMid);
    for (let i = 0; i < paired; i++) diffInto(a[pre + i], b[pre + i], `${path}/${pre + i}`, ops);
    for (let i = paired; i < bMid; i++) ops.push({ op: 'add', path: `${path}/${pre + i}`, value: b[pre + i] });
    for (let i = paired; i < aMid; i++) ops.push({ op: 'remove', path: `${path}/${pre + paired}` });
    return;
  }
  ops.push({ op: 'replace', path: path === '' ? '' : path, value: b });
}

/** Normalises through JSON (drops undefined, functions, class identity) before diffing. */
export function toJson(v: unknown): JsonValue {
  return v === undefined ? null : (JSON.parse(JSON.stringify(v)) as JsonValue);
}

/** The operations that turn `original` into `mutated`. */
export function createPatch(original: unknown, mutated: unknown): PatchOp[] {
  const ops: PatchOp[] = [];
  diffInto(toJson(original), toJson(mutated), '', ops);
  return ops;
}

/** Applies add/remove/replace ops (what createPatch emits) to a copy of `doc`. */
export function applyPatch(doc: unknown, ops: PatchOp[]): JsonValue {
  let root = toJson(doc);
  for (const op of ops) {
    if (op.path === '') {
      if (op.op === 'remove') throw new Error('cannot remove the root');
      root = structuredClone(op.value);
      continue;
    }
    const segs = op.path.split('/').slice(1).map(unescapePointer);
    const last = segs.pop() as string;
    let parent: JsonValue = root;
    for (const s of segs) {
      const next: JsonValue | undefined = Array.isArray(parent) ? parent[Number(s)] : isObj(parent) ? parent[s] : undefined;
      if (next === undefined) throw new Error(`path not found: ${op.path}`);
      parent = next;
    }
    if (Array.isArray(parent)) {
      const i = last === '-' ? parent.length : Number(last);
      if (!Number.isInteger(i) || i < 0 || i > parent.length - (op.op === 'add' ? 0 : 1)) throw new Error(`bad index: ${op.path}`);
      if (op.op === 'add') parent.splice(i, 0, structuredClone(op.value));
      else if (op.op === 'remove') parent.splice(i, 1);
      else parent[i] = structuredClone(op.value);
    } else if (isObj(parent)) {
      if (op.op !== 'add' && !Object.hasOwn(parent, last)) throw new Error(`path not found: ${op.path}`);
      if (op.op === 'remove') delete parent[last];
      else parent[last] = structuredClone(op.value);
    } else {
      throw new Error(`not a container: ${op.path}`);
    }
  }
  return root;
}
