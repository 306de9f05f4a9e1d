// CPU time and memory of a process from /proc (Linux), for benchmark reports.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let clkTck: number | undefined;
function ticksPerSecond(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100; // the value on every common Linux
    }
  }
  return clkTck;
}

export interface ProcSample {
  pid: number;
  /** utime + stime, seconds of CPU used since the process started. */
  cpuSeconds: number;
  userSeconds: number;
  systemSeconds: number;
  /** Current resident set (VmRSS), bytes. */
  rssBytes: number;
  /** Peak resident set (VmHWM), bytes. */
  peakRssBytes: number;
  /** When the sample was taken (Date.now()). */
  at: number;
}

/** Reads /proc/PID/stat and /proc/PID/status. Throws if the process is gone. */
export function sampleProcess(pid: number): ProcSample {
  const fields = statFields(pid);
  // utime is field 14, stime 15.
  const tck = ticksPerSecond();
  const userSeconds = Number(fields[14 - 3]) / tck;
  const systemSeconds = Number(fields[15 - 3]) / tck;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string) => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status);
    return m ? Number(m[1]) * 1024 : 0;
  };
  return { pid, cpuSeconds: userSeconds + systemSeconds, userSeconds, systemSeconds, rssBytes: kb('VmRSS'), peakRssBytes: kb('VmHWM'), at: Date.now() };
}

/** CPU seconds used between two samples of one process, and the CPU share of one core. */
export function cpuBetween(a: ProcSample, b: ProcSample): { cpuSeconds: number; cores: number } {
  const cpuSeconds = b.cpuSeconds - a.cpuSeconds;
  const wall = (b.at - a.at) / 1000;
  return { cpuSeconds, cores: wall > 0 ? cpuSeconds / wall : 0 };
}

/**
 * CPU seconds of this process's children that have exited and been waited for (cutime + cstime
 * of /proc/self/stat). Between two readings around a child's run, with no other child exiting,
 * the difference is that child's CPU: how the bench charges the Java producer, which it cannot
 * sample from /proc once it has exited.
 */
export function exitedChildrenCpuSeconds(): number {
  const fields = statFields('self');
  // cutime is field 16, cstime 17.
  return (Number(fields[16 - 3]) + Number(fields[17 - 3])) / ticksPerSecond();
}

/** /proc/PID/stat from field 3 on (fields[0] is field 3, the state). */
function statFields(pid: number | 'self'): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may contain spaces: split after the last ')'.
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

export interface MachineSample {
  /** Seconds every CPU spent busy (user, nice, system, irq, softirq, steal). */
  busySeconds: number;
  /** Seconds every CPU spent idle or waiting for I/O. */
  idleSeconds: number;
}

/** The whole machine's CPU time so far (first line of /proc/stat). */
export function sampleMachine(): MachineSample {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  const tck = ticksPerSecond();
  return { busySeconds: (user + nice + system + irq + softirq + steal) / tck, idleSeconds: (idle + iowait) / tck };
}
