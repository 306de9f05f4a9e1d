#!/usr/bin/env node
// idempo-sidecar: a Kafka-protocol proxy that makes the producers behind it idempotent.
import pino from 'pino';
import { parseCli, UsageError, USAGE } from './config/cli.js';
import { loadSidecarConfig, ConfigError, watchConfig } from './config/load.js';
import { SidecarMetrics } from './metrics/metrics.js';
import { startMetricsServer } from './metrics/http.js';
import { KafkaProxy } from './proxy/server.js';
import { loadTls } from './proxy/upstream-socket.js';
import { Engine } from './engine/engine.js';

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
    if (err instanceof UsageError || err instanceof ConfigError) {
      console.error(`idempo-sidecar: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }

  const log = pino({
    level: config.live.logLevel,
    base: { component: 'idempo-sidecar' },
    // SASL and TLS material never reach the logs; these keys are belt and braces.
    redact: { paths: ['password', '*.password', 'sasl', '*.sasl', 'key', '*.key'], censor: '[redacted]' },
  });
  const metrics = new SidecarMetrics();
  const proxy = new KafkaProxy({
    upstream: config.upstream,
    listen: config.listen,
    tls: loadTls(config.tls),
    sasl: config.sasl,
    maxFrameBytes: config.maxFrameBytes,
    requestTimeoutMs: config.live.requestTimeoutMs,
    log,
    metrics,
  });
  const engine = new Engine({ ctx: proxy.hookContext(), metrics, log, config, policyName: cli.policyName });
  proxy.setHook(engine.hook());
  await proxy.start();
  const metricsServer = await startMetricsServer(config.metricsListen.host, config.metricsListen.port, metrics.registry, proxy);
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
    const closed = new Promise<void>((r) => metricsServer.close(() => r()));
    metricsServer.closeAllConnections(); // keep-alive scrapers would hold close() open
    await closed;
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
