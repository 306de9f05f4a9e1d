// The fault campaign's runner: one run = one client producing numbered records under one
// fault with one seed, through the sidecar (upgrade mode) or straight to the brokers (the
// baseline), then read back straight from the brokers and judged (test/e2e/faults-workload.ts).
// A Campaign keeps one Kafka cluster (1 or 3 brokers) with a fault relay in front of every
// broker for all the runs that need that size; each run gets its own topics and sidecar.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startKafka, type KafkaCluster } from '../support/kafka.js';
import { startSidecar, type Sidecar } from '../support/sidecar.js';
import { FaultRelay, mixSeed, type FaultKind } from '../support/fault-relay.js';
import { repoRoot } from '../support/clients/java.js';
import { produce, sidecarConfig, verify, type ClientName, type ClientTimeouts } from '../e2e/faults-workload.js';
import { FAULTS, STALL_MS, knownReorder, planFor, type EventKind, type FaultName } from './faults.js';
import { EventDriver, type FiredEvent } from './events.js';

export type PathName = 'sidecar' | 'direct';

// Clients give up on a record after 60 s (the sidecar keeps trying for 120 s).
export const TIMEOUTS: ClientTimeouts = { requestMs: 3000, deliveryMs: 60_000 };
const PARTITIONS = 3;

export interface RunResult {
  seed: number;
  client: ClientName;
  fault: FaultName;
  path: PathName;
  sent: number;
  acked: number;
  failed: number;
  /** Distinct records found in the log. */
  inLog: number;
  duplicates: number;
  /** Acknowledged but not in the log (kcat: lower bound, see Verdict.ackedMissing). */
  lost: number;
  reordered: number;
  relayFaults: Record<FaultKind, number>;
  /** Bytes the relay carried towards the brokers (requests, re-sends included). */
  bytesUp: number;
  /** Connections the relay accepted (towards the brokers: the sidecar's, or the client's without it). */
  connections: number;
  events: FiredEvent[];
  /** Events whose point the stream never reached, or that failed. */
  eventsMissed: string[];
  wallMs: number;
  /** The run could not be judged (client fatal error, sidecar would not start, ...). */
  error?: string;
  /** Why records failed, as the client put it (Java: exception classes and first messages). */
  failures?: string;
  /** Where the copies are in the log (runs of consecutive offsets per partition). */
  duplicateRuns?: string[];
  /** Where the sidecar's log of a violating run was kept. */
  sidecarLog?: string;
}

/** A guarantee broken through the sidecar (or a run that could not be judged). */
export function violations(r: RunResult): string[] {
  const v: string[] = [];
  if (r.error) v.push(`error: ${r.error}`);
  if (r.duplicates > 0) v.push(`${r.duplicates} duplicates`);
  if (r.lost > 0) v.push(`${r.lost} acknowledged records lost`);
  if (r.reordered > 0 && !knownReorder(r.client, r.fault)) v.push(`${r.reordered} reordered`);
  return v;
}

/** The faults bit: without the sidecar they wrote copies, lost or reordered records. */
export const bites = (r: RunResult): boolean => r.duplicates + r.lost + r.reordered > 0;

/** One 32-bit number per (seed, client, fault): the relay plan and event points of a cell. */
export function cellSeed(seed: number, client: ClientName, fault: FaultName): number {
  let h = 0;
  for (const ch of `${client}/${fault}`) h = (Math.imul(h, 31) + ch.charCodeAt(0)) >>> 0;
  return mixSeed(seed, h);
}

interface Env {
  kafka: KafkaCluster;
  relay: FaultRelay;
  limits: Partial<Record<FaultKind, number>>;
}

export class Campaign {
  private env?: { brokers: 1 | 3; env: Env };
  readonly logDir = path.join(repoRoot, 'test-results/faults');

  constructor(private readonly log: (line: string) => void = () => {}) {}

  /** The cluster for `brokers`, started on first use; a cluster of the other size is stopped first. */
  private async cluster(brokers: 1 | 3): Promise<Env> {
    if (this.env?.brokers === brokers) return this.env.env;
    await this.closeCluster();
    const limits: Partial<Record<FaultKind, number>> = {};
    const relay = new FaultRelay({ seed: 0, stallMs: STALL_MS, limits, weights: {} });
    this.log(`starting Kafka (${brokers} broker${brokers > 1 ? 's' : ''})`);
    const kafka = await startKafka({
      brokers,
      serverProps: brokers === 3 ? { 'min.insync.replicas': '2', 'unclean.leader.election.enable': 'false' } : {},
      externalListener: (_id, port) => relay.addLink({ host: '127.0.0.1', port }),
    }).catch(async (e: unknown) => {
      await relay.close();
      throw e;
    });
    this.env = { brokers, env: { kafka, relay, limits } };
    return this.env.env;
  }

  private async closeCluster(): Promise<void> {
    const e = this.env?.env;
    this.env = undefined;
    if (!e) return;
    await e.relay.close();
    await e.kafka.stop();
  }

  async close(): Promise<void> {
    await this.closeCluster();
  }

  /** One run of one cell. Never throws for what happens inside the run: that is in `error`. */
  /** `paceMs` overrides the fault's pace (make test runs a sidecar kill over a shorter stream). */
  async run(opts: { seed: number; client: ClientName; fault: FaultName; path: PathName; records: number; paceMs?: number }): Promise<RunResult> {
    const { paceMs, ...o } = opts;
    const spec = paceMs === undefined ? FAULTS[o.fault] : { ...FAULTS[o.fault], paceMs };
    const { kafka, relay, limits } = await this.cluster(spec.brokers);
    const t0 = Date.now();
    const topics = ['a', 'b'].map((x) => `f-${o.fault}-${o.client}-s${o.seed}-${o.path}-${x}`);
    for (const t of topics) await createTopic(kafka, t, spec.brokers);
    const perTopic = Math.ceil(o.records / topics.length);
    const seed = cellSeed(o.seed, o.client, o.fault);
    const result: RunResult = {
      ...o,
      sent: 0,
      acked: 0,
      failed: 0,
      inLog: 0,
      duplicates: 0,
      lost: 0,
      reordered: 0,
      relayFaults: { reset: 0, half_write: 0, stall: 0, drop: 0 },
      bytesUp: 0,
      connections: 0,
      events: [],
      eventsMissed: [],
      wallMs: 0,
    };

    let sidecar: Sidecar | undefined;
    const stateDir = spec.stateDir ? mkdtempSync(path.join(os.tmpdir(), 'idempo-faults-state-')) : undefined;
    const config = sidecarConfig({ mode: 'upgrade', producer: { requestTimeout: '2s', deliveryTimeout: '120s', retryBackoff: { initial: '50ms', max: '1s' } }, ...(process.env.FAULTS_DEDUP ? { dedup: { strategy: process.env.FAULTS_DEDUP } } : {}) });
    const sidecarLogs: string[] = [];
    const startOne = (ports?: { listenPort: number; metricsPort: number }) =>
      startSidecar({
        upstream: kafka.externalBootstrap!,
        mode: 'upgrade',
        config: config.file,
        extraArgs: stateDir ? ['--state-dir', stateDir] : [],
        logLevel: process.env.FAULTS_LOG_LEVEL,
        ...ports,
      });
    let produceStart = Infinity;
    const progress = () => (Date.now() - produceStart) / spec.paceMs;
    const driver = new EventDriver(spec.events, mixSeed(seed, 7), progress, (kind, rng) => this.act(kind, rng, kafka, relay, topics, o.path, {
      kill: async () => {
        const sc = sidecar!;
        const ports = { listenPort: sc.listenPort, metricsPort: Number(new URL(sc.metricsUrl).port) };
        await sc.stop('SIGKILL');
        sidecarLogs.push(...sc.logs(), '--- kill -9 ---');
        const s0 = Date.now();
        sidecar = await startOne(ports);
        return Date.now() - s0;
      },
    }));
    try {
      if (o.path === 'sidecar') sidecar = await startOne();
      const plan = planFor(spec, o.client);
      relay.restart(seed, plan ? { gapBytes: plan.gapBytes, weights: plan.weights, weightsDown: plan.weightsDown } : { weights: {}, weightsDown: undefined });
      for (const k of Object.keys(limits) as FaultKind[]) delete limits[k];
      Object.assign(limits, plan?.limits);
      relay.start();
      const bootstrap = o.path === 'sidecar' ? sidecar!.bootstrap : kafka.externalBootstrap!;
      produceStart = Date.now();
      driver.start();
      const run = await produce(o.client, bootstrap, topics, perTopic, TIMEOUTS, 0, spec.paceMs);
      await driver.finish();
      relay.stop();
      result.relayFaults = { ...relay.counters.faults };
      result.bytesUp = relay.counters.bytes.up;
      result.connections = relay.counters.connections;
      result.events = driver.fired;
      result.eventsMissed = [...driver.errors, ...(driver.unfired > 0 ? [`${driver.unfired} not reached`] : [])];
      // Everything back up before reading (an event's restart may still be catching up).
      await kafka.waitReady();
      if (sidecar) {
        await sidecar.stop();
        sidecarLogs.push(...sidecar.logs());
      }
      const v = await verify(kafka.bootstrap, run);
      Object.assign(result, {
        sent: run.sent,
        acked: run.acked,
        failed: run.failed,
        inLog: v.present,
        duplicates: v.duplicates,
        lost: v.ackedMissing,
        reordered: v.reordered,
        duplicateRuns: v.duplicateRuns.length > 0 ? v.duplicateRuns : undefined,
        error: run.error,
        failures: run.failures,
      });
    } catch (e) {
      result.error = (e as Error).message.split('\n').slice(0, 3).join(' | ');
    } finally {
      await driver.finish();
      relay.stop();
      if (sidecar && sidecar.proc.exitCode === null) {
        await sidecar.stop('SIGKILL');
        sidecarLogs.push(...sidecar.logs());
      }
      config.cleanup();
      if (stateDir) rmSync(stateDir, { recursive: true, force: true });
    }
    result.wallMs = Date.now() - t0;
    // Kept for violations and for client-visible failures (a retriable failure is allowed, but
    // through the sidecar it should be rare enough to deserve a look).
    if (o.path === 'sidecar' && (violations(result).length > 0 || result.failed > 0) && sidecarLogs.length > 0) {
      mkdirSync(this.logDir, { recursive: true });
      result.sidecarLog = path.join(this.logDir, `s${o.seed}-${o.client}-${o.fault}.log`);
      writeFileSync(result.sidecarLog, sidecarLogs.join('\n') + '\n');
    }
    return result;
  }

  private async act(
    kind: EventKind,
    rng: () => number,
    kafka: KafkaCluster,
    relay: FaultRelay,
    topics: string[],
    pathName: PathName,
    sidecar: { kill: () => Promise<number> },
  ): Promise<string> {
    if (kind === 'broker-kill') {
      const id = 1 + Math.floor(rng() * kafka.brokers.length);
      const t0 = Date.now();
      await kafka.kill(id);
      await kafka.startBroker(id);
      await waitIsrFull(kafka, topics, 120_000);
      return `kill -9 broker ${id}, back in sync after ${((Date.now() - t0) / 1000).toFixed(1)} s`;
    }
    if (kind === 'leader-move') {
      const topic = topics[Math.floor(rng() * topics.length)];
      const partition = Math.floor(rng() * PARTITIONS);
      const from = (await kafka.describeTopic(topic)).find((p) => p.partition === partition)!.leader;
      const to = (from % kafka.brokers.length) + 1;
      await kafka.moveLeader(topic, partition, to);
      return `${topic}-${partition} leader ${from} -> ${to}`;
    }
    if (pathName === 'direct') {
      // What a client sees of a sidecar kill: every connection reset at once.
      relay.resetAll();
      return 'every client connection reset';
    }
    const ms = await sidecar.kill();
    return `sidecar kill -9, serving again after ${ms} ms`;
  }
}

/**
 * kafkajs's createTopics (waitForLeaders) can fail with UNKNOWN_TOPIC_OR_PARTITION while a
 * freshly started 3-broker cluster spreads the metadata; creating again is harmless.
 */
async function createTopic(k: KafkaCluster, topic: string, rf: number): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      return await k.createTopic(topic, PARTITIONS, rf);
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((res) => setTimeout(res, 500)); // retry interval
    }
  }
}

/** Until every partition of the topics has all its replicas in sync (a restarted broker caught up). */
async function waitIsrFull(k: KafkaCluster, topics: string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const parts = (await Promise.all(topics.map((t) => k.describeTopic(t).catch(() => [])))).flat();
    if (parts.length === topics.length * PARTITIONS && parts.every((p) => p.isr.length === k.brokers.length && p.leader >= 0)) return;
    if (Date.now() > deadline) throw new Error(`ISR not full after ${timeoutMs} ms: ${JSON.stringify(parts)}`);
    await new Promise((res) => setTimeout(res, 500)); // poll interval
  }
}
