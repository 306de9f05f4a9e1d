import { describe, expect, it } from 'vitest';
import { output } from '../test/support/clients/run.js';
import { exitedChildrenCpuSeconds, sampleMachine, sampleProcess } from './proc-stats.js';

// A child that spends at least `seconds` of CPU (not wall time) and exits; resolved once it has
// been waited for (test/support/clients/run.ts: tests never run a child synchronously).
async function burnInChild(seconds: number): Promise<void> {
  const code = `const {cpuUsage} = process; const s = cpuUsage(); let x = 0; while ((cpuUsage(s).user + cpuUsage(s).system) / 1e6 < ${seconds}) x++;`;
  await output(process.execPath, ['-e', code]);
}

describe('proc-stats', () => {
  it('charges an exited child its CPU through cutime + cstime', async () => {
    const before = exitedChildrenCpuSeconds();
    await burnInChild(0.3);
    const charged = exitedChildrenCpuSeconds() - before;
    expect(charged).toBeGreaterThanOrEqual(0.25);
    expect(charged).toBeLessThan(30);
  });

  it('sees the machine busy while a child burns CPU', async () => {
    const m0 = sampleMachine();
    await burnInChild(0.3);
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
