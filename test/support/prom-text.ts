// The one reader of Prometheus' text format in the tests (sidecar and operator /metrics). Strict:
// what Prometheus would refuse or misread (a sample outside a declared family, a malformed
// line, a label set twice, histogram buckets that are not cumulative) is an error.

export interface Sample {
  /** The sample's own name: the family's, or a histogram's `_bucket`/`_sum`/`_count`. */
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';
  help: string;
  samples: Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*';
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)$`);
const PAIR = new RegExp(`(${LABEL})="((?:[^"\\\\]|\\\\.)*)"(,|$)`, 'y');
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

/** Families by name, in the order of the text. Throws on anything the 0.0.4 format does not allow. */
export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  const given = new Map<Family, Set<string>>();
  let current: Family | undefined;
  const fail = (n: number, why: string, line: string): never => {
    throw new Error(`/metrics line ${n + 1}: ${why}: ${line}`);
  };
  const lines = text.split('\n');
  if (lines.pop() !== '') throw new Error('/metrics: the text does not end with a newline');
  lines.forEach((line, n) => {
    if (line === '') return;
    const meta = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta;
      if (!new RegExp(`^${NAME}$`).test(name)) fail(n, 'bad metric name', line);
      let f = families.get(name);
      if (!f) {
        f = { name, type: 'untyped', help: '', samples: [] };
        families.set(name, f);
        given.set(f, new Set());
      } else if (f !== current) fail(n, 'family split', line);
      if (given.get(f)!.has(kind)) fail(n, `second ${kind}`, line);
      if (kind === 'TYPE' && f.samples.length > 0) fail(n, 'TYPE after samples', line);
      given.get(f)!.add(kind);
      current = f;
      if (kind === 'HELP') f.help = rest.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
      else if (TYPES.has(rest)) f.type = rest as Family['type'];
      else fail(n, 'unknown type', line);
      return;
    }
    if (line.startsWith('#')) return; // a comment
    const m = SAMPLE.exec(line);
    if (!m) return fail(n, 'not a sample', line);
    const [, name, labelText, valueText] = m;
    if (!current || !belongs(name, current)) return fail(n, `sample outside its family (${current?.name ?? 'none'})`, line);
    const labels: Record<string, string> = {};
    if (labelText) {
      PAIR.lastIndex = 0;
      while (PAIR.lastIndex < labelText.length) {
        const p = PAIR.exec(labelText);
        if (!p) return fail(n, 'bad labels', line);
        if (p[1] in labels) fail(n, `label ${p[1]} twice`, line);
        labels[p[1]] = p[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
        if (p[3] === '' && PAIR.lastIndex < labelText.length) fail(n, 'bad labels', line);
      }
    }
    const value = parseValue(valueText);
    if (value === undefined) return fail(n, 'bad value', line);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    if (seen.has(key)) fail(n, 'series twice', line);
    seen.add(key);
    current.samples.push({ name, labels, value });
  });
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return families;
}

/** Sums the samples named `name` whose labels include `labels`. */
export function sumMetric(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const f of parseExposition(text).values()) {
    for (const s of f.samples) {
      if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) sum += s.value;
    }
  }
  return sum;
}

function belongs(sample: string, f: Family): boolean {
  if (sample === f.name) return f.type !== 'histogram';
  if (f.type === 'histogram') return [`${f.name}_bucket`, `${f.name}_sum`, `${f.name}_count`].includes(sample);
  if (f.type === 'summary') return [`${f.name}_sum`, `${f.name}_count`].includes(sample);
  return false;
}

/** A float as Prometheus (Go's ParseFloat) reads it: NaN and Inf in any case. */
function parseValue(v: string): number | undefined {
  if (/^[+]?inf(inity)?$/i.test(v)) return Infinity;
  if (/^-inf(inity)?$/i.test(v)) return -Infinity;
  if (/^nan$/i.test(v)) return NaN;
  return /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v) ? Number(v) : undefined;
}

/** Per label set: buckets by ascending `le`, cumulative, ending at +Inf = _count; a _sum. */
function checkHistogram(f: Family): void {
  const sets = new Map<string, { buckets: [number, number][]; sum?: number; count?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const set = sets.get(key) ?? { buckets: [] };
    sets.set(key, set);
    if (s.name.endsWith('_bucket')) {
      const bound = le === undefined ? undefined : parseValue(le);
      if (bound === undefined || Number.isNaN(bound)) throw new Error(`${f.name}: bucket without a numeric le: ${JSON.stringify(s.labels)}`);
      set.buckets.push([bound, s.value]);
    } else if (s.name.endsWith('_sum')) set.sum = s.value;
    else set.count = s.value;
  }
  for (const [key, set] of sets) {
    const b = set.buckets;
    const ok =
      b.length > 0 &&
      b.every(([le, v], i) => i === 0 || (le > b[i - 1][0] && v >= b[i - 1][1])) &&
      b[b.length - 1][0] === Infinity &&
      b[b.length - 1][1] === set.count &&
      set.sum !== undefined;
    if (!ok) throw new Error(`${f.name}${key}: buckets not cumulative up to +Inf = _count, or no _sum`);
  }
}
