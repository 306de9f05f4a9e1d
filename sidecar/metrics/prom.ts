// The parts of prom-client the sidecar uses, loaded from their own files. prom-client's index
// also loads its default-metrics collectors (with @opentelemetry/api), the cluster aggregator
// and the Pushgateway (node:https): ~15 MiB of resident memory and ~30 ms of start-up for code
// the sidecar never runs. The types are prom-client's own (prom-parts.d.ts).
import Registry from 'prom-client/lib/registry.js';
import Counter from 'prom-client/lib/counter.js';
import Gauge from 'prom-client/lib/gauge.js';
import Histogram from 'prom-client/lib/histogram.js';

export { Registry, Counter, Gauge, Histogram };
