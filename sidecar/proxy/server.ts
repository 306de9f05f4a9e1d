// Wires the proxy together: listeners, client connections, rewriters, the sidecar's own
// broker connections, and the produce hook in force (swapped on config reload).
import type net from 'node:net';
import type { Logger } from '../log/log.js';
import type { SidecarMetrics } from '../metrics/metrics.js';
import { Backoff, sleep } from '../../api/backoff.js';
import type { HostPort } from '../../api/flags.js';
import { BrokerPool } from './broker-pool.js';
import { ClusterView } from './cluster-view.js';
import { ClientConnection, type ConnectionDeps } from './connection.js';
import { ListenerRegistry, type Target } from './listeners.js';
import { passThroughHook, type HookContext, type ProduceHook } from './produce-hook.js';
import { buildRewriters, type ResponseRewriters } from './rewrite.js';
import { ByteBudget } from './byte-budget.js';
import type { TlsMaterial } from './upstream-socket.js';
import type { SaslCredentials } from './sasl.js';
import type { BrokerPort } from '../state/records.js';

export interface KafkaProxyOptions {
  upstream: HostPort[];
  listen: HostPort;
  tls?: TlsMaterial;
  sasl?: SaslCredentials;
  maxFrameBytes: number;
  /** Bytes of frames held whole, for the whole sidecar and per client connection (byte-budget.ts). */
  maxBufferedBytes: number;
  maxConnectionBufferedBytes: number;
  requestTimeoutMs: number;
  log: Logger;
  metrics: SidecarMetrics;
  /** --state-dir: brokers and their listener ports from before a restart. */
  restoredBrokers?: BrokerPort[];
}

export class KafkaProxy {
  readonly cluster = new ClusterView();
  readonly listeners: ListenerRegistry;
  readonly pool: BrokerPool;
  private readonly connections = new Set<ClientConnection>();
  private readonly rewriters: ResponseRewriters;
  private hook: ProduceHook = passThroughHook;
  private bootstrapCursor = 0;
  /** Bytes of frames held whole by every client connection together. */
  readonly budget: ByteBudget;
  private lastMemoryLog = 0;
  private listening = false;
  listenPort = 0;
  /**
   * One for every client connection: its functions are then the same ones on each, so the
   * connection's optimised code that calls them (hook() per produce) is not thrown away when a
   * new producer connects (V8 deoptimises a call site that meets a new function).
   */
  private readonly connectionDeps: ConnectionDeps;

  constructor(private readonly opts: KafkaProxyOptions) {
    this.budget = new ByteBudget(opts.maxBufferedBytes);
    opts.metrics.bufferedBytes.collect = () => this.budget.used;
    this.listeners = new ListenerRegistry(opts.listen.host, (s, t) => this.accept(s, t), opts.log);
    this.rewriters = buildRewriters({ cluster: this.cluster, listeners: this.listeners, log: opts.log });
    this.pool = new BrokerPool(this.cluster, {
      bootstrap: opts.upstream,
      tls: opts.tls,
      sasl: opts.sasl,
      maxFrameBytes: opts.maxFrameBytes,
      requestTimeoutMs: opts.requestTimeoutMs,
      log: opts.log,
    });
    this.connectionDeps = {
      log: opts.log,
      metrics: opts.metrics,
      cluster: this.cluster,
      listeners: this.listeners,
      rewriters: this.rewriters,
      hook: () => this.hook,
      budget: this.budget,
      maxConnectionBufferedBytes: opts.maxConnectionBufferedBytes,
      memoryLimited: (scope) => this.memoryLimited(scope),
      tls: opts.tls,
      maxFrameBytes: opts.maxFrameBytes,
      requestTimeoutMs: opts.requestTimeoutMs,
      resolveUpstream: (t, attempt) => this.resolve(t, attempt),
    };
  }

  /** What a produce hook may use of the proxy (its own broker requests, the cluster view, metrics, log). */
  hookContext(): HookContext {
    const pool = this.pool;
    return {
      cluster: this.cluster,
      metrics: this.opts.metrics,
      log: this.opts.log,
      knowsBroker: (nodeId) => this.cluster.brokers.has(nodeId),
      send: (to, req) => pool.send(to, req),
      refreshMetadata: (topics) => pool.refreshMetadata(topics),
    };
  }

  setHook(hook: ProduceHook): void {
    this.hook = hook;
  }

  /** Binds the bootstrap listener, then learns the cluster in the background until it answers. */
  async start(): Promise<void> {
    this.listenPort = await this.listeners.listenBootstrap(this.opts.listen.port);
    await this.restoreBrokers();
    this.listening = true;
    void this.learnCluster();
  }

  ready(): { ok: boolean; reason: string } {
    if (!this.listening) return { ok: false, reason: 'listeners not bound' };
    if (!this.cluster.metadataSeen) return { ok: false, reason: 'upstream metadata not fetched yet' };
    return { ok: true, reason: `ok: ${this.cluster.brokers.size} brokers, ${this.listeners.listenerCount()} broker listeners` };
  }

  connectionCount(): number {
    return this.connections.size;
  }

  /** SIGTERM: stop accepting, let every connection write its pending answers (bounded), close. */
  async shutdown(timeoutMs: number): Promise<void> {
    this.listeners.close();
    const drains = Promise.all([...this.connections].map((c) => c.drain()));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([drains, new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
    for (const c of this.connections) c.close('shutdown');
    this.pool.close();
  }

  /** Every broker with a listener: its address and the local port clients use for it (--state-dir). */
  brokerPorts(): BrokerPort[] {
    const out: BrokerPort[] = [];
    for (const [nodeId, listenPort] of this.listeners.boundPorts()) {
      const b = this.cluster.brokers.get(nodeId);
      if (b) out.push({ nodeId, host: b.host, port: b.port, listenPort });
    }
    return out;
  }

  /**
   * --state-dir: serve every broker the previous process served, on the same port, before the
   * cluster answers (clients holding old metadata reconnect at once). learnCluster() then closes
   * the listeners of brokers that are gone.
   */
  private async restoreBrokers(): Promise<void> {
    const list = this.opts.restoredBrokers ?? [];
    if (list.length === 0) return;
    for (const b of list) this.cluster.noteBroker({ nodeId: b.nodeId, host: b.host, port: b.port, rack: null });
    this.listeners.preferPorts(list.map((b) => [b.nodeId, b.listenPort]));
    const bound = await Promise.all(list.map((b) => this.listeners.ensure(b.nodeId).catch(() => -1)));
    const moved = list.filter((b, i) => bound[i] !== b.listenPort);
    if (moved.length > 0) this.opts.log.warn({ brokers: moved.map((b) => b.nodeId) }, 'previous listener port of a broker is taken; it got a new one');
    // performance.now() counts from process start: the restart-to-serving figure inside the process.
    this.opts.log.info({ brokers: list.length, msSinceProcessStart: Math.round(performance.now()) }, 'restored broker listeners bound');
  }

  private async learnCluster(): Promise<void> {
    const backoff = new Backoff({ initialMs: 200, maxMs: 5_000 });
    while (this.listening) {
      try {
        await this.pool.refreshMetadata(null);
        await this.listeners.sync(this.cluster.brokers.values());
        this.opts.log.info({ brokers: [...this.cluster.brokers.values()].map((b) => `${b.nodeId}@${b.host}:${b.port}`) }, 'upstream metadata fetched');
        return;
      } catch (err) {
        const delay = backoff.next();
        this.opts.log.warn({ err: (err as Error).message, retryInMs: delay }, 'cannot fetch upstream metadata yet');
        await sleep(delay);
      }
    }
  }

  /** A reader waits for buffered frames to be written: a metric always, a log line at most every 10 s. */
  private memoryLimited(scope: 'connection' | 'sidecar'): void {
    this.opts.metrics.memoryLimitWaits.inc({ scope });
    const now = Date.now();
    if (now - this.lastMemoryLog < 10_000) return;
    this.lastMemoryLog = now;
    const flag = scope === 'sidecar' ? `--max-buffered-bytes ${this.budget.limit}` : `--max-connection-buffered-bytes ${this.opts.maxConnectionBufferedBytes}`;
    this.opts.log.warn({ scope, bufferedBytes: this.budget.used }, `memory limit reached (${flag}): reading paused until buffered frames are answered`);
  }

  private accept(socket: net.Socket, target: Target): void {
    const conn = new ClientConnection(socket, target, this.connectionDeps);
    this.connections.add(conn);
    socket.once('close', () => this.connections.delete(conn));
  }

  private resolve(target: Target, attempt: number): { host: string; port: number } | undefined {
    if (target.kind === 'broker') {
      const b = this.cluster.brokers.get(target.nodeId);
      return b ? { host: b.host, port: b.port } : undefined;
    }
    const list = this.opts.upstream;
    const addr = list[(this.bootstrapCursor + attempt) % list.length];
    if (attempt === 0) this.bootstrapCursor++;
    return addr;
  }
}
