// The process's own figures, read when scraped: CPU, resident memory, V8 heap, open files, start
// time. Not prom-client's default metrics: its GC observer runs JS after every garbage
// collection and its event-loop monitor wakes every 10 ms, costs paid under load whether
// anyone scrapes or not.
import { readdirSync } from 'node:fs';
import type { Registry } from './metrics-registry.js';

/** `prefix` + cpu_seconds_total, resident_memory_bytes, heap_used_bytes, open_fds, start_time_seconds. */
export function registerProcessMetrics(registry: Registry, prefix: string, binary: string): void {
  registry.readCounter({
    name: `${prefix}cpu_seconds_total`,
    help: `User and system CPU time of the ${binary} process.`,
    read: () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1e6;
    },
  });
  registry.gauge({
    name: `${prefix}resident_memory_bytes`,
    help: `Resident memory of the ${binary} process.`,
    read: () => process.memoryUsage.rss(),
  });
  registry.gauge({
    name: `${prefix}heap_used_bytes`,
    help: 'V8 heap in use (the rest of the resident memory is code, buffers and the runtime).',
    read: () => process.memoryUsage().heapUsed,
  });
  registry.gauge({
    name: `${prefix}open_fds`,
    help: 'Open file descriptors (sockets included).',
    read: () => {
      try {
        return readdirSync('/proc/self/fd').length;
      } catch {
        return NaN; // not Linux: no figure
      }
    },
  });
  const started = Math.round(Date.now() / 1000 - process.uptime());
  registry.gauge({
    name: `${prefix}start_time_seconds`,
    help: `Start time of the ${binary} process, seconds since the epoch.`,
    read: () => started,
  });
}
