// Every metric the sidecar exports, defined once. Names and labels are a contract
// (DESIGN.md "Metrics"): dashboards and alert rules depend on them. Label values come
// from closed sets (topic names are bounded by the cluster, outcomes/reasons by code).
import { readdirSync } from 'node:fs';
import { Counter, Gauge, Histogram, Registry } from './prom.js';

/** The label value of every topic the sidecar has not seen in broker metadata. */
export const UNKNOWN_TOPIC_LABEL = '_unknown';

/**
 * A counter with a `topic` label whose values stay bounded: a name clients send before any
 * broker has vouched for it (a typo, a made-up name, an id not learned yet) is counted under
 * UNKNOWN_TOPIC_LABEL, so requests cannot grow the label set.
 *
 * Counted per batch on the produce path, so increments go to plain numbers, keyed by the raw
 * label values, and are folded into prom-client when it collects (a scrape, or a test's
 * get()): prom-client hashes the label object on every inc, which showed in observe profiles.
 * The topic label is resolved at inc, so the pending keys stay within the bounded label set.
 */
export class TopicCounter<L extends string> {
  /** Increments since the last collect: topic label → other label's value ('' without one) → count. */
  private pending = new Map<string, Map<string, number>>();

  constructor(
    readonly counter: Counter<L>,
    private readonly label: (topic: string) => string,
    /** The label other than `topic`, when there is one (produce_batches: outcome). */
    private readonly other?: Exclude<L, 'topic'>,
  ) {
    const fold = (): void => this.fold();
    // prom-client calls a metric's collect() before reading its values.
    (counter as unknown as { collect?: () => void }).collect = fold;
  }

  inc(labels: Partial<Record<L, string>> & { topic: string }, value = 1): void {
    const topic = this.label(labels.topic);
    let byOther = this.pending.get(topic);
    if (byOther === undefined) {
      byOther = new Map();
      this.pending.set(topic, byOther);
    }
    const o = this.other === undefined ? '' : ((labels as Partial<Record<string, string>>)[this.other] ?? '');
    byOther.set(o, (byOther.get(o) ?? 0) + value);
  }

  private fold(): void {
    if (this.pending.size === 0) return;
    const pending = this.pending;
    this.pending = new Map();
    for (const [topic, byOther] of pending) {
      for (const [o, n] of byOther) {
        const labels: Record<string, string> = { topic };
        if (this.other !== undefined) labels[this.other] = o;
        this.counter.inc(labels as Partial<Record<L, string | number>>, n);
      }
    }
  }
}

export class SidecarMetrics {
  readonly registry = new Registry();
  /** Whether broker metadata names this topic (set by the proxy from its cluster view); until then every topic is known. */
  knownTopic: (topic: string) => boolean = () => true;

  /** Topics a broker answered a produce for without a topic error (bounded by the cluster's topics). */
  private readonly vouched = new Set<string>();

  /** A broker accepted or judged a produce to this topic (not "unknown topic"): it exists. */
  vouchTopic(topic: string): void {
    if (this.vouched.size < 100_000) this.vouched.add(topic);
  }

  topicLabel(topic: string): string {
    return this.vouched.has(topic) || this.knownTopic(topic) ? topic : UNKNOWN_TOPIC_LABEL;
  }

  readonly requests = new Counter({
    name: 'idempo_requests_total',
    help: 'Kafka requests received from clients, by API.',
    labelNames: ['api'] as const,
    registers: [this.registry],
  });
  readonly requestLatency = new Histogram({
    name: 'idempo_request_latency_seconds',
    help: 'Time from a client request in to its response out, by API.',
    labelNames: ['api'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly duplicatesRejected = new TopicCounter(
    new Counter({
      name: 'idempo_duplicates_rejected_total',
      help: 'Batches recognised as copies and not written again (answered by the sidecar or by the broker as duplicates).',
      labelNames: ['topic'] as const,
      registers: [this.registry],
    }),
    (t) => this.topicLabel(t),
  );
  readonly outOfSequence = new TopicCounter(
    new Counter({
      name: 'idempo_out_of_sequence_total',
      help: 'Batches with a sequence gap (rejected by the sidecar or answered OUT_OF_ORDER_SEQUENCE_NUMBER by the broker).',
      labelNames: ['topic'] as const,
      registers: [this.registry],
    }),
    (t) => this.topicLabel(t),
  );
  readonly produceBatches = new TopicCounter(
    new Counter({
      name: 'idempo_produce_batches_total',
      help: 'Produce batches by outcome.',
      labelNames: ['topic', 'outcome'] as const,
      registers: [this.registry],
    }),
    (t) => this.topicLabel(t),
    'outcome',
  );
  readonly upgradedBatches = new TopicCounter(
    new Counter({
      name: 'idempo_upgraded_batches_total',
      help: 'Batches stamped with a sidecar producer id (upgrade mode).',
      labelNames: ['topic'] as const,
      registers: [this.registry],
    }),
    (t) => this.topicLabel(t),
  );
  readonly malformedBatches = new Counter({
    name: 'idempo_malformed_batches_total',
    help: 'Parts of produce requests answered by the sidecar with the error a broker gives for them (CORRUPT_MESSAGE, INVALID_RECORD, ...), by error.',
    labelNames: ['error'] as const,
    registers: [this.registry],
  });
  readonly limitReached = new Counter({
    name: 'idempo_limit_reached_total',
    help: 'Times a memory limit of the sidecar was reached (requests answered with a retriable error or entries evicted), by limit.',
    labelNames: ['limit'] as const,
    registers: [this.registry],
  });
  readonly retries = new Counter({
    name: 'idempo_retries_total',
    help: 'Upstream re-sends of the same batch, by reason.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly inflightBatches = new Gauge({
    name: 'idempo_inflight_batches',
    help: 'Batches sent upstream and not yet answered.',
    registers: [this.registry],
  });
  readonly producerSessions = new Gauge({
    name: 'idempo_producer_sessions',
    help: 'Live (producerId, epoch) sessions tracked.',
    registers: [this.registry],
  });
  readonly producerIdsAllocated = new Counter({
    name: 'idempo_producer_ids_allocated_total',
    help: 'Producer ids the upgrade mode obtained with InitProducerId (one at start; again only when a partition used up its epochs).',
    registers: [this.registry],
  });
  readonly producerIdentities = new Counter({
    name: 'idempo_producer_identities_total',
    help: 'Producer identities (producer id, epoch) partitions moved to in upgrade mode, by reason: first, sequence_hole (a sent batch failed), sequence_wrap.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly sessionsEvicted = new Counter({
    name: 'idempo_producer_sessions_evicted_total',
    help: 'Producer sessions dropped because the session cap was reached (least recently used first).',
    registers: [this.registry],
  });
  readonly produceLatency = new Histogram({
    name: 'idempo_produce_latency_seconds',
    help: 'Produce request in to response out, through the sidecar.',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120],
    registers: [this.registry],
  });
  readonly upstreamErrors = new Counter({
    name: 'idempo_upstream_errors_total',
    help: 'Errors from brokers: Kafka errors by name (e.g. NOT_LEADER_OR_FOLLOWER), and connection, timeout, init_producer_id.',
    labelNames: ['error'] as const,
    registers: [this.registry],
  });
  readonly clientConnections = new Gauge({
    name: 'idempo_client_connections',
    help: 'Open client connections.',
    registers: [this.registry],
  });
  readonly rejectedFrames = new Counter({
    name: 'idempo_rejected_frames_total',
    help: 'Client connections closed for a malformed or oversized frame, by reason.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly upstreamRedials = new Counter({
    name: 'idempo_upstream_redials_total',
    help: 'Paired upstream connections re-established after a failure, without closing the client connection.',
    registers: [this.registry],
  });
  readonly clientConnectionsClosed = new Counter({
    name: 'idempo_client_connections_closed_total',
    help: 'Client connections the sidecar closed because their upstream connection failed, by reason (sasl: the lost connection carried SASL; unsafe_request: a request that cannot be repeated was in flight; unreachable: no broker).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly configReloads = new Counter({
    name: 'idempo_config_reloads_total',
    help: 'Configuration file changes, by result: ok (applied), error (rejected), restart_needed (fields fixed at start changed).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly configChecks = new Counter({
    name: 'idempo_config_checks_total',
    help: 'Times the configuration file was read to look for a change (file events and the 5 s poll), changed or not.',
    registers: [this.registry],
  });

  // --state-dir (sidecar/state/README.md)
  readonly stateRestores = new Counter({
    name: 'idempo_state_restores_total',
    help: 'State directory loads at start-up, by result: fresh (nothing there), restored, torn_tail (cut off, then restored), corrupt (set aside; fresh producer id), other_upstream (written for other --upstream servers: set aside, fresh).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly stateWriteErrors = new Counter({
    name: 'idempo_state_write_errors_total',
    help: 'Failed writes to the state directory (journalling stops), by what followed: journal_removed (a restart starts with a fresh producer id; serving goes on without restart safety) or sends_stopped (the journal could not be removed either: upgrade mode answers KAFKA_STORAGE_ERROR and sends nothing, /readyz fails).',
    labelNames: ['then'] as const,
    registers: [this.registry],
  });
  readonly stateJournalBytes = new Gauge({
    name: 'idempo_state_journal_bytes',
    help: 'Size of the state journal file.',
    registers: [this.registry],
  });

  readonly memoryLimitWaits = new Counter({
    name: 'idempo_memory_limit_waits_total',
    help: 'Times a reader paused because frames held whole reached a byte limit (scope: connection or sidecar).',
    labelNames: ['scope'] as const,
    registers: [this.registry],
  });
  /** Read at scrape time from the proxy's byte budget. */
  readonly bufferedBytes = new BufferedBytesGauge(this.registry);

  constructor() {
    (this.requests as unknown as { collect?: () => void }).collect = () => this.foldRequestCounts();
    registerProcessMetrics(this.registry);
  }

  private readonly perApi = new Map<number, { count: { inc(): void }; latency: { observe(v: number): void } }>();

  /**
   * Per-request metrics by API. The labelled children are looked up once per API key: on the
   * hot path, prom-client's label hashing per call showed up in profiles. Request counts are
   * plain numbers folded into idempo_requests_total when it is collected (as TopicCounter does).
   */
  forApi(apiKey: number, name: string): { count: { inc(): void }; latency: { observe(v: number): void } } {
    let m = this.perApi.get(apiKey);
    if (!m) {
      // API keys Kafka does not define share one label value: clients cannot grow the label set.
      const label = name.startsWith('Unknown(') ? 'unknown' : name;
      const count = { pending: 0, inc(): void { this.pending++; } };
      this.requestCounts.push({ label, count });
      m = { count, latency: this.requestLatency.labels(label) };
      this.perApi.set(apiKey, m);
    }
    return m;
  }

  private readonly requestCounts: { label: string; count: { pending: number } }[] = [];

  private foldRequestCounts(): void {
    for (const { label, count } of this.requestCounts) {
      if (count.pending === 0) continue;
      this.requests.inc({ api: label }, count.pending);
      count.pending = 0;
    }
  }
}

/**
 * The process's own figures, read when scraped. Not prom-client's collectDefaultMetrics: its
 * GC observer runs JS after every garbage collection and its event-loop monitor wakes every
 * 10 ms, costs paid under load whether anyone scrapes or not (and ~10 MiB of RSS).
 */
function registerProcessMetrics(registry: Registry): void {
  let cpuSeen = 0;
  new Counter({
    name: 'idempo_process_cpu_seconds_total',
    help: 'User and system CPU time of the sidecar process.',
    registers: [registry],
    collect() {
      const u = process.cpuUsage();
      const now = (u.user + u.system) / 1e6;
      this.inc(Math.max(0, now - cpuSeen));
      cpuSeen = now;
    },
  });
  new Gauge({
    name: 'idempo_process_resident_memory_bytes',
    help: 'Resident memory of the sidecar process.',
    registers: [registry],
    collect() {
      this.set(process.memoryUsage.rss());
    },
  });
  new Gauge({
    name: 'idempo_process_heap_used_bytes',
    help: 'V8 heap in use (the rest of the resident memory is code, buffers and the runtime).',
    registers: [registry],
    collect() {
      this.set(process.memoryUsage().heapUsed);
    },
  });
  new Gauge({
    name: 'idempo_process_open_fds',
    help: 'Open file descriptors (sockets included).',
    registers: [registry],
    collect() {
      try {
        this.set(readdirSync('/proc/self/fd').length);
      } catch {
        // not Linux: no figure
      }
    },
  });
  new Gauge({
    name: 'idempo_process_start_time_seconds',
    help: 'Start time of the sidecar process, seconds since the epoch.',
    registers: [registry],
  }).set(Math.round(Date.now() / 1000 - process.uptime()));
}

/** idempo_buffered_bytes: the proxy sets `collect` to read its byte budget. */
class BufferedBytesGauge {
  collect: () => number = () => 0;

  constructor(registry: Registry) {
    const self = this;
    new Gauge({
      name: 'idempo_buffered_bytes',
      help: 'Bytes of frames the sidecar holds whole (requests until answered, answers it rewrites); bounded by --max-buffered-bytes.',
      registers: [registry],
      collect() {
        this.set(self.collect());
      },
    });
  }
}
