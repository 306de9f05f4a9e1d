// Where a sidecar's resident memory is at its peak, for investigations (docs/benchmarks.md,
// session 5 upmem). Loaded into the sidecar through the bench:
//   node dist/bench/run.js --runs upgrade --rounds 1 --no-sessions \
//     "--node-flags=--require $PWD/dist/bench/memory-sampler.cjs"
// Every 20 ms it reads process.memoryUsage() and /proc/self/status; at each new RSS maximum
// (0.25 MiB or more above the last) it also sums /proc/self/smaps by kind of mapping (and lists
// the mappings other than V8's pages with 0.5 MiB or more resident). At exit it
// writes, in MiB, the maximum of each figure, everything at the RSS peak and a time series (every
// second: RSS, anonymous/file RSS, V8 heap, external, arrayBuffers, smaps by kind, to tell a
// plateau from growth over a long run) to $IDEMPO_MEMORY_SAMPLES (a directory, default the
// system's temporary one) as memory-PID.json.
// Its own reads add to the figures (the idle RSS the bench prints is not meaningful with it; the
// peak by ~1.5 MiB). CommonJS: through --import the ES module loader would add ~14 MiB.
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';

const MiB = 2 ** 20;
type Figures = Record<string, number>;

function status(): Figures {
  const s = readFileSync('/proc/self/status', 'latin1');
  const kib = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(s)?.[1] ?? 0) * 1024;
  return { rssAnon: kib('RssAnon'), rssFile: kib('RssFile'), hwm: kib('VmHWM') };
}

/**
 * Resident bytes by kind: the node binary, V8's 256 KiB heap pages, malloc's brk heap, other
 * anonymous, other files; and the large mappings (kind, size, resident, name), e.g. a native
 * module's own allocator.
 */
function smaps(): { by: Figures; large: string[] } {
  const by: Figures = {};
  const large: string[] = [];
  let kind = '';
  let mapping = '';
  for (const line of readFileSync('/proc/self/smaps', 'latin1').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) {
      const name = m[3];
      const size = parseInt(m[2], 16) - parseInt(m[1], 16);
      if (name.endsWith('/node')) kind = 'nodeBinary';
      else if (name === '[heap]') kind = 'mallocBrk';
      else if (name.startsWith('/')) kind = 'otherFiles';
      else if (name === '' && size === 256 * 1024) kind = 'v8Pages';
      else kind = 'otherAnon';
      mapping = `${kind} ${size / 1024} KiB ${name}`;
      continue;
    }
    const r = /^Rss:\s+(\d+)/.exec(line);
    if (!r) continue;
    const kib = Number(r[1]);
    by[kind] = (by[kind] ?? 0) + kib * 1024;
    if (kib >= 512 && kind !== 'v8Pages') large.push(`${mapping}: ${kib} KiB resident`.trim());
  }
  return { by, large };
}

const max: Figures = {};
let peak: { figures: Figures; spaces: Figures; smaps: ReturnType<typeof smaps> } | undefined;
let smapsAt = 0;
let last: ReturnType<typeof smaps> = { by: {}, large: [] };
const started = Date.now();
let seriesAt = 0;
const series: { s: number; figures: Figures }[] = [];

const timer = setInterval(() => {
  const f: Figures = { ...process.memoryUsage(), ...status() };
  for (const k of Object.keys(f)) max[k] = Math.max(max[k] ?? 0, f[k]);
  const now = Date.now();
  if (now - seriesAt >= 1000) {
    seriesAt = now;
    const { rss, rssAnon, rssFile, heapTotal, heapUsed, external, arrayBuffers } = f;
    series.push({ s: Math.round((now - started) / 1000), figures: { rss, rssAnon, rssFile, heapTotal, heapUsed, external, arrayBuffers, ...smaps().by } });
  }
  if (peak && f.rss <= peak.figures.rss) return;
  if (f.rss > smapsAt + MiB / 4) {
    smapsAt = f.rss;
    last = smaps();
  }
  const spaces: Figures = {};
  for (const s of v8.getHeapSpaceStatistics()) if (s.space_size > 0) spaces[s.space_name] = s.space_size;
  peak = { figures: f, spaces, smaps: last };
}, 20);
timer.unref();

process.on('exit', () => {
  const mib = (o: Figures): Figures => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, Number((v / MiB).toFixed(1))]));
  const out = {
    max: mib(max),
    atPeak: peak && { ...mib(peak.figures), spaces: mib(peak.spaces), smaps: mib(peak.smaps.by), largeMappings: peak.smaps.large },
    series: series.map(({ s, figures }) => ({ s, ...mib(figures) })),
  };
  writeFileSync(path.join(process.env.IDEMPO_MEMORY_SAMPLES ?? os.tmpdir(), `memory-${process.pid}.json`), `${JSON.stringify(out, null, 1)}\n`);
});
