// Real Apache Kafka (KRaft, 4.3) for tests: one combined broker+controller, or three brokers
// with one dedicated controller (killing or restarting a broker never touches the quorum, so
// failover tests see broker failover only). Each node gets free ports and its own data dir
// under one temp dir; stop() — or this process exiting — kills every JVM and removes the dir.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { probeMetadata, type ProbePartition } from '../../scripts/kafka/probe.js';
import { javaClientBuild, repoRoot } from './clients/java.js';
import { runJavaAdmin } from './clients/java.js';
import { kafkajsCreateTopics, kafkajsTopicMetadata, type PartitionInfo } from './clients/kafkajs.js';
import { trackChild } from './clients/run.js';
import { onProcessEnd } from './process-end.js';
import { freePorts } from './ports.js';
import { GiveUp, waitFor } from './poll.js';

export interface BrokerInfo {
  id: number;
  host: string;
  port: number;
  /** With `externalListener`: the EXTERNAL listener's own port and the port it advertises. */
  externalPort?: number;
  advertisedExternalPort?: number;
}

export interface StartKafkaOptions {
  brokers?: 1 | 3;
  /** Extra server.properties for every node (override the defaults). */
  serverProps?: Record<string, string>;
  /** JVM heap per node (default 512m for one broker, 384m each for three). */
  heap?: string;
  /** How long start/waitReady may take (default 90 s). */
  timeoutMs?: number;
  /**
   * JVM flags per node. Default: C1 JIT only + serial GC, which starts faster and burns far less
   * CPU on a 2-core machine; pass [] (or G1 flags) for throughput runs such as benchmarks.
   */
  jvmOpts?: string[];
  /**
   * Adds a second listener per broker, EXTERNAL, whose advertised port this returns (given the
   * broker id and the listener's real port), e.g. a fault relay's port in front of it. Clients
   * bootstrapped on `externalBootstrap` then reach every broker through those ports, while the
   * brokers replicate, and `bootstrap` keeps answering, on the direct PLAINTEXT listener.
   */
  externalListener?: (brokerId: number, externalPort: number) => number | Promise<number>;
  /** Host the EXTERNAL listener advertises (default 127.0.0.1), e.g. a pod bridge address a relay listens on. */
  externalHost?: string;
  /** Parent of the cluster's temp dir (configs, data, logs); default os.tmpdir(). */
  parentDir?: string;
}

export interface KafkaCluster {
  /** Comma-separated host:port of every broker. */
  bootstrap: string;
  /** With `externalListener`: the advertised EXTERNAL addresses of every broker. */
  externalBootstrap?: string;
  brokers: BrokerInfo[];
  clusterId: string;
  /** Temp dir holding every node's config, data and logs (removed by stop()). */
  dir: string;
  /** Milliseconds from startKafka() to ready. */
  startMs: number;
  /** SIGKILL a broker and wait for the process to be gone. */
  kill(id: number): Promise<void>;
  /** SIGTERM (controlled shutdown), wait for exit (SIGKILL after 30 s). */
  stopBroker(id: number): Promise<void>;
  /** Start a stopped/killed broker again with the same port and data; waits until ready. */
  startBroker(id: number): Promise<void>;
  isRunning(id: number): boolean;
  /** OS pid of a running broker's JVM (for CPU/RSS sampling), undefined when it is down. */
  pid(id: number): number | undefined;
  /** Waits until every running broker answers Metadata listing exactly the running brokers. */
  waitReady(timeoutMs?: number): Promise<void>;
  /** Creates a topic (no error if it exists) and waits until all its partitions have leaders. */
  createTopic(name: string, partitions?: number, replicationFactor?: number): Promise<void>;
  /** Partitions of a topic with leader, replicas (assignment order) and ISR, from fresh metadata. */
  describeTopic(name: string): Promise<PartitionInfo[]>;
  /** Makes `toBrokerId` the leader of topic-partition (reassign it first + preferred election). */
  moveLeader(topic: string, partition: number, toBrokerId: number): Promise<void>;
  /** Path of a node's server.log (broker id, or 'controller' in a 3-broker cluster). */
  logFile(id: number | 'controller'): string;
  /** Kills every process and removes the dir. Safe to call twice. */
  stop(): Promise<void>;
}

interface Node {
  id: number;
  port: number;
  dir: string;
  config: string;
  isBroker: boolean;
  proc?: ChildProcess;
  exited?: Promise<void>;
}

const CONTROLLER_ID = 100;
const clusters = new Set<() => void>();
let exitHook = false;

function kafkaUuid(): string {
  // Kafka's Uuid: 16 random bytes, URL-safe base64 without padding, never starting with '-'.
  for (;;) {
    const s = randomBytes(16).toString('base64url');
    if (!s.startsWith('-')) return s;
  }
}

function propsText(p: Record<string, string>): string {
  return Object.entries(p).map(([k, v]) => `${k}=${v}`).join('\n') + '\n';
}

export async function startKafka(opts: StartKafkaOptions = {}): Promise<KafkaCluster> {
  const t0 = Date.now();
  const n = opts.brokers ?? 1;
  const timeoutMs = opts.timeoutMs ?? 90_000;
  const heap = opts.heap ?? (n === 1 ? '512m' : '384m');
  // Skipping bytecode verification of the (Maven Central) jars saves another ~10% start CPU.
  const jvmOpts = opts.jvmOpts ?? ['-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC', '-XX:+UnlockDiagnosticVMOptions', '-XX:-BytecodeVerificationRemote'];
  const build = await javaClientBuild();
  const cp = `${build.jar}:${build.libs}/*`;
  const dir = mkdtempSync(path.join(opts.parentDir ?? os.tmpdir(), 'idempo-kafka-'));
  const clusterId = kafkaUuid();
  const defaults = readFileSync(path.join(repoRoot, 'scripts/kafka/broker-defaults.properties'), 'utf8');
  const log4j = path.join(dir, 'log4j2.properties');
  writeFileSync(log4j, readFileSync(path.join(repoRoot, 'scripts/kafka/log4j2.properties')));

  const ext = opts.externalListener;
  const extHost = opts.externalHost ?? '127.0.0.1';
  const ports = await freePorts(ext ? 2 * n + 1 : n + 1);
  const cport = ports[n];
  // EXTERNAL listener per broker (only with externalListener): real port, advertised port.
  const extPorts = new Map<number, { port: number; advertised: number }>();
  if (ext) for (let i = 0; i < n; i++) extPorts.set(i + 1, { port: ports[n + 1 + i], advertised: await ext(i + 1, ports[n + 1 + i]) });
  const withExternal = (id: number, p: Record<string, string>): Record<string, string> => {
    const e = extPorts.get(id);
    if (!e) return p;
    return { ...p, listeners: `${p.listeners},EXTERNAL://127.0.0.1:${e.port}`, 'advertised.listeners': `${p['advertised.listeners']},EXTERNAL://${extHost}:${e.advertised}` };
  };
  const common: Record<string, string> = {
    'controller.listener.names': 'CONTROLLER',
    'listener.security.protocol.map': `PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT${ext ? ',EXTERNAL:PLAINTEXT' : ''}`,
    // Static voters: formatting needs no --standalone/--initial-controllers step.
    'controller.quorum.voters': `${n === 1 ? 1 : CONTROLLER_ID}@127.0.0.1:${cport}`,
  };
  if (n === 3) {
    // Internal topics and auto-created topics survive the loss of a broker.
    Object.assign(common, {
      'default.replication.factor': '3',
      'offsets.topic.replication.factor': '3',
      'transaction.state.log.replication.factor': '3',
      'transaction.state.log.min.isr': '1',
      'share.coordinator.state.topic.replication.factor': '3',
    });
  }
  const nodes: Node[] = [];
  const addNode = (id: number, port: number, props: Record<string, string>, isBroker: boolean) => {
    const ndir = path.join(dir, isBroker ? `broker-${id}` : 'controller');
    mkdirSync(ndir, { recursive: true });
    const config = path.join(ndir, 'server.properties');
    writeFileSync(config, defaults + propsText({ ...common, ...props, 'node.id': String(id), 'log.dirs': path.join(ndir, 'data'), ...opts.serverProps }));
    nodes.push({ id, port, dir: ndir, config, isBroker });
  };
  if (n === 1) {
    addNode(1, ports[0], withExternal(1, {
      'process.roles': 'broker,controller',
      listeners: `PLAINTEXT://127.0.0.1:${ports[0]},CONTROLLER://127.0.0.1:${cport}`,
      'advertised.listeners': `PLAINTEXT://127.0.0.1:${ports[0]}`,
      'inter.broker.listener.name': 'PLAINTEXT',
    }), true);
  } else {
    addNode(CONTROLLER_ID, cport, { 'process.roles': 'controller', listeners: `CONTROLLER://127.0.0.1:${cport}` }, false);
    for (let i = 0; i < n; i++) {
      addNode(i + 1, ports[i], withExternal(i + 1, {
        'process.roles': 'broker',
        listeners: `PLAINTEXT://127.0.0.1:${ports[i]}`,
        'advertised.listeners': `PLAINTEXT://127.0.0.1:${ports[i]}`,
        'inter.broker.listener.name': 'PLAINTEXT',
      }), true);
    }
  }
  const brokerNodes = nodes.filter((x) => x.isBroker);
  const brokers: BrokerInfo[] = brokerNodes.map((x) => ({ id: x.id, host: '127.0.0.1', port: x.port, externalPort: extPorts.get(x.id)?.port, advertisedExternalPort: extPorts.get(x.id)?.advertised }));
  const bootstrap = brokers.map((b) => `${b.host}:${b.port}`).join(',');
  let stopped = false;
  let dumping: { node: Node; tmp: string } | undefined;

  // Class-data sharing: with no archive yet, the first node launched records the classes it
  // loads and writes them into one when it exits normally (stopBroker, or stop() which ends it
  // gracefully for that reason); later JVMs map the archive and start with ~30% less CPU.
  // The archive sits beside the client jar (same classpath). IDEMPO_KAFKA_CDS=0 turns it off.
  const cdsFile = path.join(build.dir, 'kafka-node.jsa');
  const cdsOpts = (node: Node): string[] => {
    // Only with the default flags: an archive is refused by JVMs with other verification settings.
    if (process.env.IDEMPO_KAFKA_CDS === '0' || opts.jvmOpts) return [];
    if (existsSync(cdsFile)) return [`-XX:SharedArchiveFile=${cdsFile}`];
    if (dumping) return [];
    dumping = { node, tmp: `${cdsFile}.${process.pid}-${node.id}-${Date.now()}.tmp` };
    return [`-XX:ArchiveClassesAtExit=${dumping.tmp}`];
  };
  const finishDump = (node: Node) => {
    if (dumping?.node !== node) return;
    try {
      if (existsSync(dumping.tmp) && !existsSync(cdsFile)) renameSync(dumping.tmp, cdsFile);
    } catch {
      /* another process got there first */
    }
    rmSync(dumping.tmp, { force: true });
    dumping = undefined; // killed before dumping: the next launch tries again
  };

  const launch = (node: Node) => {
    const out = openSync(path.join(node.dir, 'stdout.log'), 'a');
    // The node formats its own storage in-process (IdempoClient broker), then runs kafka.Kafka.
    // stdin stays an open pipe: the JVM halts when it closes, i.e. when this process dies.
    const proc = spawn(
      'java',
      [
        `-Xmx${heap}`, '-Xms128m', ...jvmOpts, ...cdsOpts(node), '-Djava.awt.headless=true',
        `-Dlog4j2.configurationFile=${log4j}`, `-Didempo.kafka.logfile=${path.join(node.dir, 'server.log')}`,
        '-cp', cp, 'IdempoClient', 'broker', '--config', node.config, '--cluster-id', clusterId,
      ],
      { stdio: ['pipe', out, out], env: { ...process.env, IDEMPO_WATCH_STDIN: '1' } },
    );
    closeSync(out);
    proc.stdin!.on('error', () => {});
    trackChild(proc);
    node.proc = proc;
    node.exited = new Promise((res) =>
      proc.once('exit', () => {
        finishDump(node);
        res();
      }),
    );
    proc.once('exit', () => {
      if (node.proc === proc) node.proc = undefined;
    });
  };

  const running = (id: number) => nodes.find((x) => x.id === id && x.isBroker)?.proc !== undefined;
  const nodeOf = (id: number): Node => {
    const node = brokerNodes.find((x) => x.id === id);
    if (!node) throw new Error(`no broker ${id} (brokers: ${brokers.map((b) => b.id).join(',')})`);
    return node;
  };

  // Each condition throws what it saw while not met, so a timeout says why.
  const waitReady = async (ms = timeoutMs) => {
    await waitFor(`every broker to see every live broker (logs in ${dir})`, async () => {
      if (stopped) throw new GiveUp('cluster stopped');
      const dead = nodes.find((x) => !x.isBroker && !x.proc);
      if (dead) throw new GiveUp(`controller exited; see ${path.join(dead.dir, 'server.log')}`);
      const live = brokerNodes.filter((x) => x.proc);
      const want = live.map((x) => x.id).join(',');
      const answers = await Promise.all(
        live.map((x) => probeMetadata('127.0.0.1', x.port, 1000).then((r) => r.brokers.map((b) => b.id).join(','), (e: Error) => `error: ${e.message}`)),
      );
      if (live.length > 0 && answers.every((a) => a === want)) return true;
      throw new Error(`want [${want}]: ${live.map((x, i) => `broker ${x.id} sees [${answers[i]}]`).join('; ') || 'no broker running'}`);
    }, ms);
  };

  const waitForTopic = async (topic: string, ok: (ps: ProbePartition[]) => boolean, what: string, ms = 30_000) => {
    await waitFor(`every broker to report ${what} for topic ${topic}`, async () => {
      const live = brokerNodes.filter((x) => x.proc);
      const views = await Promise.all(
        live.map((x) => probeMetadata('127.0.0.1', x.port, 1000, [topic]).then((r) => r.topics[0]?.partitions ?? [], () => null)),
      );
      if (views.every((v) => v !== null && ok(v))) return true;
      throw new Error(JSON.stringify(views));
    }, ms);
  };

  const killNode = async (node: Node, sig: NodeJS.Signals, graceMs: number) => {
    const proc = node.proc;
    if (!proc) return;
    proc.kill(sig);
    const t = setTimeout(() => proc.kill('SIGKILL'), graceMs);
    await node.exited;
    clearTimeout(t);
  };

  const cleanupSync = () => {
    stopped = true;
    for (const x of nodes) x.proc?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  clusters.add(cleanupSync);
  if (!exitHook) {
    exitHook = true;
    // Also on a signal: the bench keeps the broker's log in tmpfs, RAM until reboot if left behind.
    onProcessEnd(() => {
      for (const c of clusters) c();
      clusters.clear();
    });
  }

  const cluster: KafkaCluster = {
    bootstrap,
    externalBootstrap: ext ? brokers.map((b) => `${extHost}:${b.advertisedExternalPort}`).join(',') : undefined,
    brokers,
    clusterId,
    dir,
    startMs: 0,
    kill: (id) => killNode(nodeOf(id), 'SIGKILL', 0),
    stopBroker: (id) => killNode(nodeOf(id), 'SIGTERM', 30_000),
    async startBroker(id) {
      const node = nodeOf(id);
      if (node.proc) return;
      launch(node);
      await waitReady();
    },
    isRunning: running,
    pid: (id) => nodeOf(id).proc?.pid,
    waitReady,
    async createTopic(name, partitions = 1, replicationFactor = 1) {
      await kafkajsCreateTopics(liveBootstrap(), [{ topic: name, numPartitions: partitions, replicationFactor }]);
      // Every live broker knows the topic and its leaders: no client sees UNKNOWN_TOPIC_OR_PARTITION.
      await waitForTopic(name, (ps) => ps.length === partitions && ps.every((p) => p.leader >= 0), `${partitions} partitions with leaders`);
    },
    describeTopic: (name) => kafkajsTopicMetadata(liveBootstrap(), name),
    async moveLeader(topic, partition, toBrokerId) {
      await runJavaAdmin('move-leader', liveBootstrap(), { topic, partition, to: toBrokerId, 'timeout-ms': 60_000 });
      // The tool saw the change on one broker; wait until every live broker's metadata agrees.
      await waitForTopic(topic, (ps) => ps.find((p) => p.partition === partition)?.leader === toBrokerId, `leader of partition ${partition} = ${toBrokerId}`);
    },
    logFile: (id) => path.join(id === 'controller' ? nodes.find((x) => !x.isBroker)!.dir : nodeOf(id).dir, 'server.log'),
    async stop() {
      if (stopped) return;
      stopped = true;
      // A node recording the class-data archive must exit normally to write it (once per cache).
      if (dumping?.node.proc) await killNode(dumping.node, 'SIGTERM', 20_000);
      // Data is thrown away, so no controlled shutdown: SIGKILL is fast and always works.
      await Promise.all(nodes.map((x) => killNode(x, 'SIGKILL', 0)));
      clusters.delete(cleanupSync);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  // Admin tools only need one reachable broker; avoid listing killed ones first.
  const liveBootstrap = () => brokerNodes.filter((x) => x.proc).map((x) => `127.0.0.1:${x.port}`).join(',') || bootstrap;

  try {
    for (const x of nodes) launch(x);
    await waitReady();
  } catch (e) {
    const logs = nodes.map((x) => `--- ${x.dir}/server.log (tail)\n${tailFile(path.join(x.dir, 'server.log'))}\n${tailFile(path.join(x.dir, 'stdout.log'))}`).join('\n');
    await cluster.stop();
    throw new Error(`${(e as Error).message}\n${logs}`);
  }
  cluster.startMs = Date.now() - t0;
  return cluster;
}

function tailFile(f: string, lines = 15): string {
  try {
    return readFileSync(f, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(none)';
  }
}
