// make bench: Kafka's own Java producer benchmark (ProducerPerformance) on one broker,
// direct and through three proxies, in interleaved rounds:
//   direct        the broker itself;
//   relay         a plain Node.js byte relay in its own process (the floor of any Node proxy);
//   observe       the sidecar in observe mode;
//   upgrade       the sidecar in upgrade mode (the producer is not idempotent, so it stamps).
// For every proxy: MB/s and ratio to direct, CPU seconds per GB of the proxy process (utime +
// stime from /proc), idle and peak RSS (VmRSS after start, VmHWM at the end), ready time
// after start, and the p50/p99 it adds at a fixed rate no run saturates. Medians over the
// rounds, with min–max. A second table: where the machine's CPU went in each measured run
// (the proxy, the broker, the Java producer, the rest, idle). Then the sidecar's memory with
// 1,000 live producer sessions. Timing goals live here, never in tests.
//
//   node dist/bench/run.js [--records 300000] [--rounds 3] [--runs direct,relay,observe,upgrade] [--warmup 50000]
//                          [--cpu-prof DIR] [--node-flags=FLAGS --keep-logs DIR] [--no-sessions]
//                          [--baseline CHECKOUT]   (adds runs observe-base/upgrade-base: that
//                          checkout's built sidecar, for a before/after in the same run)
//                          [--broker-dir DIR] [--broker-warmup 1000000] [--pin-proxy CPU]
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { existsSync, statfsSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startKafka } from '../test/support/kafka.js';
import { freePort } from '../test/support/ports.js';
import { kafkajsCreateTopics } from '../test/support/clients/kafkajs.js';
import { runProducerPerf, type ProducerPerfResult } from './producer-perf.js';
import { exitedChildrenCpuSeconds, sampleMachine, sampleProcess } from './proc-stats.js';
import { startRelayProcess, startSidecarProcess, type ProxyProcess } from './proxies.js';
import { measureSessions } from './sessions.js';

const { values: opts } = parseArgs({
  options: {
    records: { type: 'string', default: '300000' },
    // Records through each proxy before the measured run. A sidecar runs for hours: a longer warm-up
    // measures its steady state, after V8's optimising compiler has finished (it still compiles
    // through the measured run after 50,000: perfup's perf profile, docs/benchmarks.md).
    warmup: { type: 'string', default: '50000' },
    rounds: { type: 'string', default: '3' },
    runs: { type: 'string', default: 'direct,relay,observe,upgrade' },
    'cpu-prof': { type: 'string' },
    // Investigation: more Node/V8 flags for the sidecars (e.g. --trace-gc), their output kept in DIR.
    'node-flags': { type: 'string' },
    'keep-logs': { type: 'string' },
    'no-sessions': { type: 'boolean', default: false },
    // A built checkout of another commit: its sidecar is measured in the same rounds (runs *-base).
    baseline: { type: 'string' },
    // Where the broker keeps its log: by default tmpfs (/dev/shm) when it has room, so the page
    // cache's write-back to disk, which the runs do not control, does not move their figures.
    'broker-dir': { type: 'string' },
    // Records through the broker before the first round (see below).
    'broker-warmup': { type: 'string', default: '1000000' },
    'pin-proxy': { type: 'string' },
  },
  allowPositionals: true,
});
const RECORDS = Number(opts.records);
const ROUNDS = Number(opts.rounds);
const RECORD_SIZE = 1024;
const LATENCY = { records: 20_000, rate: 4_000 };
const WARMUP = Number(opts.warmup);
const GB = (RECORDS * RECORD_SIZE) / 1e9;
type RunName = 'direct' | 'relay' | 'observe' | 'upgrade' | 'observe-base' | 'upgrade-base';
const RUNS = opts.runs.split(',') as RunName[];
if (opts.baseline) {
  // Each sidecar run right after the same run of the baseline checkout: the pair shares the machine's mood.
  for (const m of ['observe', 'upgrade'] as const) if (RUNS.includes(m) && !RUNS.includes(`${m}-base`)) RUNS.splice(RUNS.indexOf(m), 0, `${m}-base`);
}
if (RUNS.some((r) => r.endsWith('-base')) && !opts.baseline) throw new Error('runs *-base need --baseline CHECKOUT');
/** The runs of a round: a baseline and its run swap places every other round (the second of a pair ran slower, measured). */
function roundOrder(round: number): RunName[] {
  if (round % 2 === 0) return RUNS;
  const out = [...RUNS];
  for (const m of ['observe', 'upgrade'] as const) {
    const [a, b] = [out.indexOf(m), out.indexOf(`${m}-base`)];
    if (a >= 0 && b >= 0) [out[a], out[b]] = [out[b], out[a]];
  }
  return out;
}
// Not idempotent, so upgrade mode has work to do; the same producer settings for every run.
const props = { 'enable.idempotence': false, 'linger.ms': 5, 'max.in.flight.requests.per.connection': 5 };

/** Goals of issue 9 (docs/benchmarks.md); printed as met or missed, never asserted. */
const GOALS = { observeCpuPerGb: 1.4, upgradeCpuPerGb: 2.0, idleRssMiB: 55, peakRssMiB: 80, readyMs: 200 };

interface Sample {
  mbPerSec: number;
  ratio?: number;
  cpuPerGb?: number;
  /** The user-space part of cpuPerGb (the rest is the kernel's: socket reads and writes). */
  userPerGb?: number;
  idleRssMiB?: number;
  peakRssMiB?: number;
  readyMs?: number;
  p50Ms: number;
  p99Ms: number;
  addedP50Ms?: number;
  addedP99Ms?: number;
  /** Where the machine's CPU went during the measured run, per GB: the broker's JVM, the Java producer, everything. */
  brokerCpuPerGb: number;
  producerCpuPerGb: number;
  machineCpuPerGb: number;
  /** Machine CPU none of those three was charged for (kernel work, other processes); tick rounding can make it slightly negative. */
  restCpuPerGb: number;
  /** Per cent of the machine's CPU time left idle during the measured run. */
  idlePercent: number;
}

const MiB = 2 ** 20;
const GiB = 2 ** 30;

/** tmpfs when it has room for the retained log (below) and the RAM behind it, else the temp dir. */
function brokerDir(): string {
  if (opts['broker-dir']) return opts['broker-dir'];
  const shm = '/dev/shm';
  if (existsSync(shm)) {
    const st = statfsSync(shm);
    // statfs of a tmpfs gives its size limit, not free memory: the JVMs need theirs too.
    if (st.bavail * st.bsize >= 4 * GiB && os.freemem() >= 8 * GiB) return shm;
  }
  return os.tmpdir();
}

/**
 * With --pin-proxy CPU: the proxy alone on that CPU, the bench (so the broker and the producer it
 * starts) on the others. An experiment, not the default: it shows what a proxy does with a CPU of
 * its own, where by default all three share the machine.
 */
const PIN = opts['pin-proxy'];
function pin(pid: number, cpus: string): void {
  execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
}
if (PIN !== undefined) {
  const others = os.cpus().map((_c, i) => i).filter((i) => String(i) !== PIN);
  if (others.length === 0 || others.length === os.cpus().length) throw new Error(`--pin-proxy ${PIN}: needs one of CPUs 0-${os.cpus().length - 1} and another left`);
  pin(process.pid, others.join(','));
}
const BROKER_DIR = brokerDir();

let relayPort = 0;
let relayTarget = '';
const kafka = await startKafka({
  brokers: 1,
  heap: '1g',
  jvmOpts: ['-XX:+UseG1GC', '-XX:MaxGCPauseMillis=20'],
  parentDir: BROKER_DIR,
  // The log in RAM stays bounded: after each check at most ~768 MiB per partition (3 segments),
  // plus what 10 s of runs add; deleted segments go at once (the default keeps them 60 s, GBs here).
  serverProps: { 'log.segment.bytes': String(256 * MiB), 'log.retention.bytes': String(512 * MiB), 'log.retention.check.interval.ms': '10000', 'log.segment.delete.delay.ms': '0' },
  // A second listener the broker advertises at the relay's port: clients bootstrapped through
  // the relay reach the broker only through it.
  externalListener: async (_id, port) => {
    relayPort = await freePort();
    relayTarget = `127.0.0.1:${port}`;
    return relayPort;
  },
});
const samples = new Map<RunName, Sample[]>(RUNS.map((r) => [r, []]));
try {
  const topic = 'bench';
  await kafkajsCreateTopics(kafka.bootstrap, [{ topic, numPartitions: 3, replicationFactor: 1 }]);
  // Warm the broker so the first measured run is not penalised, in two producer sessions: after one
  // (100,000 or 1,000,000 records, even with a 15 s pause after it) the next session still cost the
  // broker 4.6-8.7 CPU s/GB against 2-2.7 for those after it; after two, it did not (measured).
  const half = Math.ceil(Number(opts['broker-warmup']) / 2);
  // --broker-warmup 0 skips it (ProducerPerformance fails on 0 records).
  for (let i = 0; i < 2 && half > 0; i++) await runProducerPerf({ bootstrap: kafka.bootstrap, topic, records: half, props });

  const start = (run: RunName, round: number): Promise<ProxyProcess | undefined> => {
    if (run === 'direct') return Promise.resolve(undefined);
    if (run === 'relay') return startRelayProcess(relayPort, relayTarget);
    const prof = opts['cpu-prof'] ? `--cpu-prof --cpu-prof-dir=${opts['cpu-prof']} --cpu-prof-name=${run}-${round}.cpuprofile` : '';
    const base = run.endsWith('-base');
    const mode = (base ? run.slice(0, -'-base'.length) : run) as 'observe' | 'upgrade';
    return startSidecarProcess({ upstream: kafka.bootstrap, mode, nodeFlags: `${prof} ${opts['node-flags'] ?? ''}`.trim(), checkout: base ? opts.baseline : undefined });
  };

  const measure = async (run: RunName, round: number): Promise<Sample> => {
    const proxy = await start(run, round);
    if (proxy && PIN !== undefined) pin(proxy.pid, PIN);
    try {
      const bootstrap = proxy?.bootstrap ?? kafka.bootstrap;
      let idleRssMiB: number | undefined;
      if (proxy) {
        await new Promise((r) => setTimeout(r, 500)); // let start-up garbage settle
        idleRssMiB = sampleProcess(proxy.pid).rssBytes / MiB;
        await runProducerPerf({ bootstrap, topic, records: WARMUP, props }); // the proxy's JIT
      }
      const before = proxy && sampleProcess(proxy.pid);
      const [broker0, machine0, producer0] = [sampleProcess(kafka.pid(1)!), sampleMachine(), exitedChildrenCpuSeconds()];
      const t = await runProducerPerf({ bootstrap, topic, records: RECORDS, props });
      const [broker1, machine1, producer1] = [sampleProcess(kafka.pid(1)!), sampleMachine(), exitedChildrenCpuSeconds()];
      const after = proxy && sampleProcess(proxy.pid);
      const machineBusy = machine1.busySeconds - machine0.busySeconds;
      const machineIdle = machine1.idleSeconds - machine0.idleSeconds;
      const lat: ProducerPerfResult = await runProducerPerf({ bootstrap, topic, records: LATENCY.records, throughput: LATENCY.rate, props });
      const end = proxy && sampleProcess(proxy.pid);
      const cpuPerGb = before && after ? (after.cpuSeconds - before.cpuSeconds) / GB : undefined;
      const brokerCpuPerGb = (broker1.cpuSeconds - broker0.cpuSeconds) / GB;
      const producerCpuPerGb = (producer1 - producer0) / GB;
      return {
        mbPerSec: t.mbPerSec,
        cpuPerGb,
        userPerGb: before && after ? (after.userSeconds - before.userSeconds) / GB : undefined,
        idleRssMiB,
        peakRssMiB: end ? end.peakRssBytes / MiB : undefined,
        readyMs: proxy?.readyMs,
        p50Ms: lat.p50Ms,
        p99Ms: lat.p99Ms,
        brokerCpuPerGb,
        producerCpuPerGb,
        machineCpuPerGb: machineBusy / GB,
        restCpuPerGb: machineBusy / GB - brokerCpuPerGb - producerCpuPerGb - (cpuPerGb ?? 0),
        idlePercent: (100 * machineIdle) / (machineBusy + machineIdle),
      };
    } finally {
      await proxy?.stop();
      if (proxy && opts['keep-logs']) writeFileSync(path.join(opts['keep-logs'], `${run}-${round}.log`), proxy.logs.join('\n'));
    }
  };

  for (let round = 0; round < ROUNDS; round++) {
    let direct: Sample | undefined;
    for (const run of roundOrder(round)) {
      const s = await measure(run, round);
      if (run === 'direct') direct = s;
      if (direct) {
        s.ratio = s.mbPerSec / direct.mbPerSec;
        if (run !== 'direct') {
          s.addedP50Ms = s.p50Ms - direct.p50Ms;
          s.addedP99Ms = s.p99Ms - direct.p99Ms;
        }
      }
      samples.get(run)!.push(s);
      console.error(`round ${round + 1}/${ROUNDS} ${run}: ${JSON.stringify(s, (_k, v: unknown) => (typeof v === 'number' ? Number(v.toFixed(2)) : v))}`);
    }
  }

  console.log(`\nproducer: Kafka ProducerPerformance (Java), ${RECORDS} x ${RECORD_SIZE} B records, acks=all, enable.idempotence=false, linger.ms=5, 3 partitions, one broker on loopback (log in ${BROKER_DIR}, warmed with ${opts['broker-warmup']} records)`);
  console.log(`latency at ${LATENCY.rate} records/s (${LATENCY.records} records); ${ROUNDS} interleaved rounds; median [min-max]; CPU s per GB of record payload (${GB.toFixed(3)} GB a run)`);
  const cell = (run: RunName, key: keyof Sample, digits: number): string => {
    const v = samples.get(run)!.map((s) => s[key]).filter((x): x is number => typeof x === 'number');
    if (v.length === 0) return '';
    const sorted = [...v].sort((a, b) => a - b);
    const f = (x: number): string => x.toFixed(digits);
    const median = sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
    return sorted.length === 1 ? f(median) : `${f(median)} [${f(sorted[0])}-${f(sorted[sorted.length - 1])}]`;
  };
  console.table(
    RUNS.map((run) => ({
      run,
      'MB/s': cell(run, 'mbPerSec', 1),
      'vs direct': cell(run, 'ratio', 2),
      'CPU s/GB': cell(run, 'cpuPerGb', 2),
      'user s/GB': cell(run, 'userPerGb', 2),
      'idle RSS MiB': cell(run, 'idleRssMiB', 1),
      'peak RSS MiB': cell(run, 'peakRssMiB', 1),
      'ready ms': cell(run, 'readyMs', 0),
      'added p50 ms': cell(run, 'addedP50Ms', 0),
      'added p99 ms': cell(run, 'addedP99Ms', 0),
    })),
  );
  // On a machine the runs keep busy, MB/s follows what the whole machine spends per GB: the
  // producer's share dwarfs the proxy's, and a proxy that saves the broker work wins MB/s back.
  console.log(`\nwhere the machine's CPU went in the measured runs (s per GB, median [min-max]; the producer's includes its JVM's start; "rest" = kernel work no process was charged for and other processes)${PIN !== undefined ? `; each proxy alone on CPU ${PIN}, the broker and the producer on the others` : ''}:`);
  console.table(
    RUNS.map((run) => ({
      run,
      'MB/s': cell(run, 'mbPerSec', 1),
      proxy: cell(run, 'cpuPerGb', 2),
      broker: cell(run, 'brokerCpuPerGb', 2),
      producer: cell(run, 'producerCpuPerGb', 2),
      rest: cell(run, 'restCpuPerGb', 2),
      machine: cell(run, 'machineCpuPerGb', 2),
      'idle %': cell(run, 'idlePercent', 1),
    })),
  );
  printGoals(samples);

  if (!opts['no-sessions']) console.log(`\n${await measureSessions(kafka.bootstrap, topic)}`);
} finally {
  await kafka.stop();
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function printGoals(all: Map<RunName, Sample[]>): void {
  const m = (run: RunName, key: keyof Sample): number | undefined => {
    const v = (all.get(run) ?? []).map((s) => s[key]).filter((x): x is number => typeof x === 'number');
    return v.length ? median(v) : undefined;
  };
  const lines: string[] = [];
  const check = (what: string, value: number | undefined, ok: (v: number) => boolean, goal: string): void => {
    if (value !== undefined) lines.push(`${ok(value) ? 'met   ' : 'MISSED'} ${what}: ${value.toFixed(2)} (goal ${goal})`);
  };
  check('observe CPU s/GB', m('observe', 'cpuPerGb'), (v) => v <= GOALS.observeCpuPerGb, `<= ${GOALS.observeCpuPerGb}`);
  check('upgrade CPU s/GB', m('upgrade', 'cpuPerGb'), (v) => v <= GOALS.upgradeCpuPerGb, `<= ${GOALS.upgradeCpuPerGb}`);
  for (const run of ['observe', 'upgrade'] as const) {
    check(`${run} idle RSS MiB`, m(run, 'idleRssMiB'), (v) => v <= GOALS.idleRssMiB, `<= ${GOALS.idleRssMiB}`);
    check(`${run} peak RSS MiB`, m(run, 'peakRssMiB'), (v) => v <= GOALS.peakRssMiB, `<= ${GOALS.peakRssMiB}`);
    check(`${run} ready ms`, m(run, 'readyMs'), (v) => v <= GOALS.readyMs, `<= ${GOALS.readyMs}`);
    const relay = m('relay', 'mbPerSec');
    if (relay === undefined) continue;
    // Rounds drift (the machine has slow spells): the same round's relay is the fairer yardstick.
    const own = all.get(run) ?? [];
    const relays = all.get('relay') ?? [];
    const rounds = Math.min(own.length, relays.length);
    let atLeast = 0;
    for (let i = 0; i < rounds; i++) if (own[i].mbPerSec >= relays[i].mbPerSec) atLeast++;
    check(`${run} MB/s vs relay`, m(run, 'mbPerSec'), (v) => v >= relay, `>= relay's ${relay.toFixed(1)}; at least the same round's relay in ${atLeast} of ${rounds} rounds`);
  }
  console.log(`\ngoals (issue 9), on medians:\n${lines.join('\n')}`);
}
