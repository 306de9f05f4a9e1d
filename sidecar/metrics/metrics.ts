// Every metric the sidecar exports, defined once. Names and labels are a contract
// (DESIGN.md "Metrics"): dashboards and alert rules depend on them. Label values come
// from closed sets (topic names are bounded by the cluster, outcomes/reasons by code).
import { Registry, type Counter, type Histogram } from '../../api/metrics-registry.js';
import { registerProcessMetrics } from '../../api/process-metrics.js';

/** The label value of every topic the sidecar has not seen in broker metadata. */
export const UNKNOWN_TOPIC_LABEL = '_unknown';

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

  /**
   * The `topic` label of a topic name: a name clients send before any broker has vouched for it
   * (a typo, a made-up name, an id not learned yet) is counted under UNKNOWN_TOPIC_LABEL, so
   * requests cannot grow the label set. Applied at every count (the `bound` of the topic counters).
   */
  topicLabel(topic: string): string {
    return this.vouched.has(topic) || this.knownTopic(topic) ? topic : UNKNOWN_TOPIC_LABEL;
  }

  readonly requests = this.registry.counter({
    name: 'idempo_requests_total',
    help: 'Kafka requests received from clients, by API.',
    labelNames: ['api'] as const,
  });
  readonly requestLatency = this.registry.histogram({
    name: 'idempo_request_latency_seconds',
    help: 'Time from a client request in to its response out, by API.',
    labelNames: ['api'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  });
  readonly duplicatesRejected = this.registry.counter({
    name: 'idempo_duplicates_rejected_total',
    help: 'Batches recognised as copies and not written again (answered by the sidecar or by the broker as duplicates).',
    labelNames: ['topic'] as const,
    bound: { topic: (t) => this.topicLabel(t) },
  });
  readonly outOfSequence = this.registry.counter({
    name: 'idempo_out_of_sequence_total',
    help: 'Batches with a sequence gap (rejected by the sidecar or answered OUT_OF_ORDER_SEQUENCE_NUMBER by the broker).',
    labelNames: ['topic'] as const,
    bound: { topic: (t) => this.topicLabel(t) },
  });
  readonly produceBatches = this.registry.counter({
    name: 'idempo_produce_batches_total',
    help: 'Produce batches by outcome.',
    labelNames: ['topic', 'outcome'] as const,
    bound: { topic: (t) => this.topicLabel(t) },
  });
  readonly upgradedBatches = this.registry.counter({
    name: 'idempo_upgraded_batches_total',
    help: 'Batches stamped with a sidecar producer id (upgrade mode).',
    labelNames: ['topic'] as const,
    bound: { topic: (t) => this.topicLabel(t) },
  });
  readonly malformedBatches = this.registry.counter({
    name: 'idempo_malformed_batches_total',
    help: 'Parts of produce requests answered by the sidecar with the error a broker gives for them (CORRUPT_MESSAGE, INVALID_RECORD, ...), by error.',
    labelNames: ['error'] as const,
  });
  readonly limitReached = this.registry.counter({
    name: 'idempo_limit_reached_total',
    help: 'Times a memory limit of the sidecar was reached (requests answered with a retriable error or entries evicted), by limit.',
    labelNames: ['limit'] as const,
  });
  readonly retries = this.registry.counter({
    name: 'idempo_retries_total',
    help: 'Upstream re-sends of the same batch, by reason.',
    labelNames: ['reason'] as const,
  });
  readonly inflightBatches = this.registry.gauge({
    name: 'idempo_inflight_batches',
    help: 'Batches sent upstream and not yet answered.',
  });
  readonly producerSessions = this.registry.gauge({
    name: 'idempo_producer_sessions',
    help: 'Live (producerId, epoch) sessions tracked.',
  });
  readonly producerIdsAllocated = this.registry.counter({
    name: 'idempo_producer_ids_allocated_total',
    help: 'Producer ids the upgrade mode obtained with InitProducerId (one at start; again only when a partition used up its epochs).',
  });
  readonly producerIdentities = this.registry.counter({
    name: 'idempo_producer_identities_total',
    help: 'Producer identities (producer id, epoch) partitions moved to in upgrade mode, by reason: first, sequence_hole (a sent batch failed), sequence_wrap.',
    labelNames: ['reason'] as const,
  });
  readonly sessionsEvicted = this.registry.counter({
    name: 'idempo_producer_sessions_evicted_total',
    help: 'Producer sessions dropped because the session cap was reached (least recently used first).',
  });
  readonly produceLatency = this.registry.histogram({
    name: 'idempo_produce_latency_seconds',
    help: 'Produce request in to response out, through the sidecar.',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120],
  });
  readonly upstreamErrors = this.registry.counter({
    name: 'idempo_upstream_errors_total',
    help: 'Errors from brokers: Kafka errors by name (e.g. NOT_LEADER_OR_FOLLOWER), and connection, timeout, init_producer_id, malformed_answer (an answer the sidecar could not read: the client connection is closed).',
    labelNames: ['error'] as const,
  });
  readonly clientConnections = this.registry.gauge({
    name: 'idempo_client_connections',
    help: 'Open client connections.',
  });
  readonly rejectedFrames = this.registry.counter({
    name: 'idempo_rejected_frames_total',
    help: 'Client connections closed for a malformed or oversized frame, by reason.',
    labelNames: ['reason'] as const,
  });
  readonly upstreamRedials = this.registry.counter({
    name: 'idempo_upstream_redials_total',
    help: 'Paired upstream connections re-established after a failure, without closing the client connection.',
  });
  readonly clientConnectionsClosed = this.registry.counter({
    name: 'idempo_client_connections_closed_total',
    help: 'Client connections the sidecar closed because their upstream connection failed, by reason (sasl: the lost connection carried SASL; unsafe_request: a request that cannot be repeated was in flight; unreachable: no broker).',
    labelNames: ['reason'] as const,
  });
  readonly configReloads = this.registry.counter({
    name: 'idempo_config_reloads_total',
    help: 'Configuration file changes, by result: ok (applied), error (rejected), restart_needed (fields fixed at start changed).',
    labelNames: ['result'] as const,
  });
  readonly configChecks = this.registry.counter({
    name: 'idempo_config_checks_total',
    help: 'Times the configuration file was read to look for a change (file events and the 5 s poll), changed or not.',
  });

  // --state-dir (sidecar/state/README.md)
  readonly stateRestores = this.registry.counter({
    name: 'idempo_state_restores_total',
    help: 'State directory loads at start-up, by result: fresh (nothing there), restored, torn_tail (cut off, then restored), corrupt (set aside; fresh producer id), other_upstream (written for other --upstream servers: set aside, fresh).',
    labelNames: ['result'] as const,
  });
  readonly stateWriteErrors = this.registry.counter({
    name: 'idempo_state_write_errors_total',
    help: 'Failed writes to the state directory (journalling stops), by what followed: journal_removed (a restart starts with a fresh producer id; serving goes on without restart safety) or sends_stopped (the journal could not be removed either: upgrade mode answers KAFKA_STORAGE_ERROR and sends nothing, /readyz fails).',
    labelNames: ['then'] as const,
  });
  readonly stateJournalBytes = this.registry.gauge({
    name: 'idempo_state_journal_bytes',
    help: 'Size of the state journal file.',
  });

  readonly memoryLimitWaits = this.registry.counter({
    name: 'idempo_memory_limit_waits_total',
    help: 'Times a reader paused because frames held whole reached a byte limit (scope: connection or sidecar).',
    labelNames: ['scope'] as const,
  });
  /** The proxy sets `collect` to read its byte budget; read at scrape time. */
  readonly bufferedBytes = { collect: (): number => 0 };

  constructor() {
    this.registry.gauge({
      name: 'idempo_buffered_bytes',
      help: 'Bytes of frames the sidecar holds whole (requests until answered, answers it rewrites); bounded by --max-buffered-bytes.',
      read: () => this.bufferedBytes.collect(),
    });
    registerProcessMetrics(this.registry, 'idempo_process_', 'sidecar');
  }

  private readonly perApi = new Map<number, { count: Counter; latency: Histogram }>();

  /** Per-request metrics by API: the series are looked up once per API key, then kept. */
  forApi(apiKey: number, name: string): { count: Counter; latency: Histogram } {
    let m = this.perApi.get(apiKey);
    if (!m) {
      // API keys Kafka does not define share one label value: clients cannot grow the label set.
      const api = name.startsWith('Unknown(') ? 'unknown' : name;
      m = { count: this.requests.series({ api }), latency: this.requestLatency.series({ api }) };
      this.perApi.set(apiKey, m);
    }
    return m;
  }
}
