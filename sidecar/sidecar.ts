// idempo-sidecar: a Kafka-protocol proxy that makes the producers behind it idempotent.
// Started by main.cts (the entry point).
import { FlagError } from '../api/flags.js';
import { parseCli, USAGE } from './config/cli.js';
import { loadSidecarConfig, ConfigError, watchConfig } from './config/load.js';
import { createLogger } from './log/log.js';
import { SidecarMetrics } from './metrics/metrics.js';
import { closeServer, startProbeServer } from '../api/probe-server.js';
import { KafkaProxy } from './proxy/server.js';
import { loadTls } from './proxy/upstream-socket.js';
import { Engine } from './engine/engine.js';
import { StateStore } from './state/store.js';

async function main(): Promise<void> {
  let cli;
  let config;
  try {
    cli = parseCli(process.argv.slice(2), process.env);
    if (cli.help) {
      console.log(USAGE);
      return;
    }
    config = loadSidecarConfig(cli);
  } catch (err) {
    if (err instanceof FlagError || err instanceof ConfigError) {
      console.error(`idempo-sidecar: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }

  const log = createLogger({ level: config.live.logLevel, base: { component: 'idempo-sidecar' } });
  const metrics = new SidecarMetrics();
  // Read before anything is bound: the restored broker ports are listened on first.
  let state;
  try {
    state = cli.stateDir ? StateStore.open(cli.stateDir, {
          log,
          metrics,
          dedupWindowMs: config.live.dedup.windowMs,
          upstream: config.upstream.map((u) => `${u.host}:${u.port}`).sort().join(','),
        }) : undefined;
  } catch (err) {
    console.error(`idempo-sidecar: --state-dir: ${(err as Error).message}`);
    process.exit(2);
  }
  const proxy = new KafkaProxy({
    upstream: config.upstream,
    listen: config.listen,
    tls: loadTls(config.tls),
    sasl: config.sasl,
    maxFrameBytes: config.maxFrameBytes,
    maxBufferedBytes: config.maxBufferedBytes,
    maxConnectionBufferedBytes: config.maxConnectionBufferedBytes,
    requestTimeoutMs: config.live.requestTimeoutMs,
    log,
    metrics,
    restoredBrokers: state?.restored?.brokers,
  });
  if (state) {
    const store = state.store;
    proxy.listeners.onChange = () => store.append({ type: 'brokers', brokers: proxy.brokerPorts() });
  }
  const engine = new Engine({ ctx: proxy.hookContext(), metrics, log, config, policyName: cli.policyName, state, brokerPorts: () => proxy.brokerPorts() });
  proxy.setHook(engine.hook());
  await proxy.start();
  // Not ready while a failed --state-dir journal stops upgrade-mode sends (state/README.md "When a write fails").
  const stateStore = state?.store;
  const readiness = { ready: () => (stateStore?.stopped ? { ok: false, reason: `state dir: ${stateStore.stopped}` } : proxy.ready()) };
  const metricsServer = await startProbeServer(config.metricsListen, metrics.registry, readiness);
  log.info(
    { listen: `${config.listen.host}:${proxy.listenPort}`, upstream: config.upstream.map((u) => `${u.host}:${u.port}`), mode: config.live.mode, metrics: `${config.metricsListen.host}:${(metricsServer.address() as { port: number }).port}` },
    'idempo-sidecar started',
  );

  const stopWatching = cli.config
    ? watchConfig(cli.config, cli, config, log, {
        changed: (next) => {
          log.level = next.logLevel;
          engine.reconfigure(next);
          metrics.configReloads.inc({ result: 'ok' });
        },
        rejected: () => metrics.configReloads.inc({ result: 'error' }),
        restartNeeded: () => metrics.configReloads.inc({ result: 'restart_needed' }),
        checked: () => metrics.configChecks.inc(),
      })
    : () => {};

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: draining in-flight requests');
    stopWatching();
    await proxy.shutdown(config.live.deliveryTimeoutMs);
    engine.close();
    await state?.store.close();
    await closeServer(metricsServer);
    log.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((err: Error) => {
  console.error(`idempo-sidecar: ${err.message}`);
  process.exit(1);
});
