import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { exitedChildrenCpuSeconds, sampleMachine, sampleProcess } from './proc-stats.js';

// A child that spends at least `seconds` of CPU (not wall time) and exits.
function burnInChild(seconds: number): void {
  const code = `const {cpuUsage} = process; const s = cpuUsage(); let x = 0; while ((cpuUsage(s).user + cpuUsage(s).system) / 1e6 < ${seconds}) x++;`;
  const r = spawnSync(process.execPath, ['-e', code]);
  expect(r.status).toBe(0);
}

describe('proc-stats', () => {
  it('charges an exited child its CPU through cutime + cstime', () => {
    const before = exitedChildrenCpuSeconds();
    burnInChild(0.3);
    const charged = exitedChildrenCpuSeconds() - before;
    expect(charged).toBeGreaterThanOrEqual(0.25);
    expect(charged).toBeLessThan(30);
  });

  it('sees the machine busy while a child burns CPU', () => {
    const m0 = sampleMachine();
    burnInChild(0.3);
    const m1 = sampleMachine();
    expect(m1.busySeconds - m0.busySeconds).toBeGreaterThanOrEqual(0.25);
    expect(m1.idleSeconds).toBeGreaterThanOrEqual(m0.idleSeconds);
  });

  it('reads its own process', () => {
    const s = sampleProcess(process.pid);
    expect(s.cpuSeconds).toBeGreaterThan(0);
    expect(s.rssBytes).toBeGreaterThan(0);
    expect(s.peakRssBytes).toBeGreaterThanOrEqual(s.rssBytes);
  });
});
