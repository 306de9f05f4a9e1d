// Summarises a V8 .cpuprofile (node --cpu-prof) by self time: the top functions, and the time
// per module file, idle excluded. For docs/benchmarks.md.
//   node dist/bench/profile-summary.js FILE.cpuprofile [top=25]
import { readFileSync } from 'node:fs';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [file, topArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: profile-summary.js FILE.cpuprofile [top]');
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const selfUs = new Map<number, number>();
profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));

const short = (url: string): string => url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/').replace(/^node:/, 'node:');
const byFunction = new Map<string, number>();
const byFile = new Map<string, number>();
let total = 0;
for (const [id, us] of selfUs) {
  const f = byId.get(id)!.callFrame;
  if (f.functionName === '(idle)') continue;
  total += us;
  const name = `${f.functionName || '(anonymous)'} ${f.url ? `${short(f.url)}:${f.lineNumber + 1}` : ''}`.trim();
  byFunction.set(name, (byFunction.get(name) ?? 0) + us);
  const where = f.url ? short(f.url) : f.functionName; // (garbage collector), (program)
  byFile.set(where, (byFile.get(where) ?? 0) + us);
}
const top = Number(topArg ?? 25);
const pct = (us: number): string => `${((100 * us) / total).toFixed(1).padStart(5)} %`;
const ms = (us: number): string => `${(us / 1000).toFixed(0).padStart(6)} ms`;
console.log(`busy (not idle): ${(total / 1e6).toFixed(2)} s`);
console.log('\nself time by function:');
for (const [k, v] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${ms(v)} ${pct(v)}  ${k}`);
console.log('\nself time by file:');
for (const [k, v] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${ms(v)} ${pct(v)}  ${k}`);
