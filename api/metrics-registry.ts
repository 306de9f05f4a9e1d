// Prometheus metrics of both binaries: counters, gauges and histograms kept in a registry that
// writes Prometheus' text exposition format 0.0.4, what a scrape of /metrics reads. Our own, not
// prom-client: that library hashes a label object on every inc/observe, which showed in the
// sidecar's produce-path profiles (a produce request's metrics: 326 ns with it, 48 here).
// Label values are found through one Map per label name (nested), and a series whose label
// values are known in advance (`series(...)`) is a plain object with a number in it.

/** What a scraper is told it reads (Prometheus text exposition format 0.0.4). */
export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

interface Exposed {
  readonly name: string;
  /** The family's lines: HELP, TYPE, then one line per sample. */
  lines(): string[];
}

interface Common {
  /** Metric name, e.g. idempo_requests_total. */
  name: string;
  help: string;
}

export interface LabelledOptions<L extends string> extends Common {
  labelNames: readonly L[];
  /**
   * Maps a label's value before it is looked up, to keep the label set bounded (a topic a
   * client sent that no broker vouched for → one shared value).
   */
  bound?: Partial<Record<L, (value: string) => string>>;
}

export interface ReadOptions extends Common {
  /** The value is read when scraped (process figures, a budget's level). */
  read: () => number;
}

export interface HistogramOptions extends Common {
  /** Upper bounds of the buckets, ascending; +Inf is added. */
  buckets: readonly number[];
}

/** The metrics of one binary, and their text exposition for /metrics. */
export class Registry {
  readonly contentType = CONTENT_TYPE;
  private readonly families: Exposed[] = [];

  counter<L extends string>(o: LabelledOptions<L>): LabelledCounter<L>;
  counter(o: Common): Counter;
  counter<L extends string>(o: Common | LabelledOptions<L>): Counter | LabelledCounter<L> {
    return 'labelNames' in o ? this.add(new LabelledCounter(o)) : this.add(new Counter(o));
  }

  /** A counter whose value is read at scrape time (it must never go down). */
  readCounter(o: ReadOptions): void {
    this.add(new ReadMetric(o, 'counter'));
  }

  gauge(o: Common): Gauge;
  gauge(o: ReadOptions): void;
  gauge(o: Common | ReadOptions): Gauge | void {
    if ('read' in o) this.add(new ReadMetric(o, 'gauge'));
    else return this.add(new Gauge(o));
  }

  histogram<L extends string>(o: HistogramOptions & LabelledOptions<L>): LabelledHistogram<L>;
  histogram(o: HistogramOptions): Histogram;
  histogram<L extends string>(o: HistogramOptions | (HistogramOptions & LabelledOptions<L>)): Histogram | LabelledHistogram<L> {
    return 'labelNames' in o ? this.add(new LabelledHistogram(o)) : this.add(new Histogram(o, ''));
  }

  /** The text exposition of every metric, in the order they were defined. */
  metrics(): Promise<string> {
    return Promise.resolve(this.families.map((f) => f.lines().join('\n')).join('\n\n') + '\n');
  }

  private add<M extends Exposed>(m: M): M {
    if (this.families.some((f) => f.name === m.name)) throw new Error(`metric ${m.name} is defined twice`);
    this.families.push(m);
    return m;
  }
}

// ---------------------------------------------------------------------------------------------

/** A counter without labels; also one series of a labelled counter. */
export class Counter implements Exposed {
  readonly name: string;
  private readonly help: string;
  value = 0;

  constructor(o: Common, readonly labelText = '') {
    this.name = o.name;
    this.help = o.help;
  }

  /** Adds `by` (≥ 0; anything else is ignored: a metric bug must not stop the proxy). */
  inc(by = 1): void {
    if (by > 0) this.value += by;
  }

  lines(): string[] {
    return [...header(this.name, this.help, 'counter'), sample(this.name, this.labelText, this.value)];
  }
}

export class Gauge implements Exposed {
  readonly name: string;
  private readonly help: string;
  private value = 0;

  constructor(o: Common) {
    this.name = o.name;
    this.help = o.help;
  }

  set(v: number): void {
    this.value = v;
  }

  inc(by = 1): void {
    this.value += by;
  }

  dec(by = 1): void {
    this.value -= by;
  }

  lines(): string[] {
    return [...header(this.name, this.help, 'gauge'), sample(this.name, '', this.value)];
  }
}

class ReadMetric implements Exposed {
  readonly name: string;

  constructor(
    private readonly o: ReadOptions,
    private readonly type: 'counter' | 'gauge',
  ) {
    this.name = o.name;
  }

  lines(): string[] {
    return [...header(this.name, this.o.help, this.type), sample(this.name, '', this.o.read())];
  }
}

/** A histogram without labels; also one series of a labelled histogram. */
export class Histogram implements Exposed {
  readonly name: string;
  private readonly help: string;
  private readonly bounds: readonly number[];
  /** Observations per bucket (not cumulative; the last one is +Inf's own). */
  private readonly counts: number[];
  private sum = 0;
  private count = 0;

  constructor(
    o: HistogramOptions,
    private readonly labelText: string,
  ) {
    this.name = o.name;
    this.help = o.help;
    this.bounds = o.buckets;
    this.counts = new Array<number>(o.buckets.length + 1).fill(0);
  }

  /** Records one observation (a non-finite value is ignored). */
  observe(v: number): void {
    if (!Number.isFinite(v)) return;
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]) i++;
    this.counts[i]++;
    this.sum += v;
    this.count++;
  }

  lines(): string[] {
    return [...header(this.name, this.help, 'histogram'), ...this.samples()];
  }

  samples(): string[] {
    const out: string[] = [];
    const rest = this.labelText === '' ? '' : `,${this.labelText}`;
    let acc = 0;
    for (let i = 0; i < this.bounds.length; i++) {
      acc += this.counts[i];
      out.push(sample(`${this.name}_bucket`, `le="${this.bounds[i]}"${rest}`, acc));
    }
    out.push(sample(`${this.name}_bucket`, `le="+Inf"${rest}`, this.count));
    out.push(sample(`${this.name}_sum`, this.labelText, this.sum));
    out.push(sample(`${this.name}_count`, this.labelText, this.count));
    return out;
  }
}

// ---------------------------------------------------------------------------------------------

/** Series by label values: one Map level per label name; a series is made on first use. */
abstract class Labelled<L extends string, S> implements Exposed {
  readonly name: string;
  protected readonly help: string;
  private readonly labelNames: readonly L[];
  private readonly bound: Partial<Record<L, (value: string) => string>>;
  private readonly root = new Map<string, unknown>();
  /** In the order they were made: the order they are exposed in. */
  protected readonly all: S[] = [];

  constructor(o: LabelledOptions<L>) {
    this.name = o.name;
    this.help = o.help;
    this.labelNames = o.labelNames;
    this.bound = o.bound ?? {};
    if (o.labelNames.length === 0) throw new Error(`metric ${o.name}: a labelled metric needs label names`);
  }

  protected abstract make(labelText: string): S;

  abstract lines(): string[];

  /** The series of these label values (a missing one counts as ""). Keep it to skip the lookup. */
  series(labels: Partial<Record<L, string>>): S {
    const names = this.labelNames;
    let level = this.root;
    for (let i = 0; ; i++) {
      const n = names[i];
      const bound = this.bound[n];
      const v = bound === undefined ? (labels[n] ?? '') : bound(labels[n] ?? '');
      const next = level.get(v);
      if (i === names.length - 1) {
        if (next !== undefined) return next as S;
        const s = this.make(this.labelTextOf(labels));
        level.set(v, s);
        this.all.push(s);
        return s;
      }
      if (next !== undefined) level = next as Map<string, unknown>;
      else level.set(v, (level = new Map()));
    }
  }

  private labelTextOf(labels: Partial<Record<L, string>>): string {
    return this.labelNames
      .map((n) => {
        const bound = this.bound[n];
        const v = bound === undefined ? (labels[n] ?? '') : bound(labels[n] ?? '');
        return `${n}="${escapeLabelValue(v)}"`;
      })
      .join(',');
  }
}

export class LabelledCounter<L extends string> extends Labelled<L, Counter> {
  inc(labels: Partial<Record<L, string>>, by = 1): void {
    this.series(labels).inc(by);
  }

  protected make(labelText: string): Counter {
    return new Counter({ name: this.name, help: this.help }, labelText);
  }

  lines(): string[] {
    return [...header(this.name, this.help, 'counter'), ...this.all.map((s) => sample(this.name, s.labelText, s.value))];
  }
}

export class LabelledHistogram<L extends string> extends Labelled<L, Histogram> {
  private readonly buckets: readonly number[];

  constructor(o: HistogramOptions & LabelledOptions<L>) {
    super(o);
    this.buckets = o.buckets;
  }

  observe(labels: Partial<Record<L, string>>, v: number): void {
    this.series(labels).observe(v);
  }

  protected make(labelText: string): Histogram {
    return new Histogram({ name: this.name, help: this.help, buckets: this.buckets }, labelText);
  }

  lines(): string[] {
    return [...header(this.name, this.help, 'histogram'), ...this.all.flatMap((s) => s.samples())];
  }
}

// ---------------------------------------------------------------------------------------------

function header(name: string, help: string, type: string): string[] {
  return [`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${type}`];
}

function sample(name: string, labelText: string, v: number): string {
  return `${name}${labelText === '' ? '' : `{${labelText}}`} ${formatValue(v)}`;
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}
