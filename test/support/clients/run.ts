// Runs a helper process to completion with a hard timeout. Every child started here is
// tracked and SIGKILLed if it outlives its timeout or when this Node process exits, so a
// failing test never leaves a JVM or kcat behind. Tests run every command through here, never
// synchronously (no-sync-children.test.ts checks): a synchronous child stops the test worker's
// event loop, and vitest's worker gives up on its own RPC calls after a fixed 60 s — on a
// loaded machine a slow child (java, a nested vitest) failed runs in which every test passed
// ("Timeout calling onTaskUpdate").
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { onProcessEnd } from '../process-end.js';

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

/** Registers a child so it is SIGKILLed when this process exits (normally or by signal). */
export function trackChild(child: ChildProcess): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    onProcessEnd(killAllTracked);
  }
  live.add(child);
  child.once('exit', () => live.delete(child));
}

export function killAllTracked(): void {
  for (const c of live) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  live.clear();
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  ms: number;
}

export interface RunOptions {
  timeoutMs?: number;
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Keep stdin open (and never write to it) — for children that exit when stdin closes. */
  holdStdin?: boolean;
}

export function runProcess(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const t0 = Date.now();
  const so: SpawnOptions = { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['pipe', 'pipe', 'pipe'] };
  const child = spawn(cmd, args, so);
  trackChild(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  child.stdin!.on('error', () => {}); // child may exit before reading its input
  if (opts.input !== undefined) child.stdin!.end(opts.input);
  else if (!opts.holdStdin) child.stdin!.end();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, opts.timeoutMs ?? 60_000);
  return new Promise((resolve, reject) => {
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      child.stdin?.destroy();
      resolve({ code, signal, stdout, stderr, timedOut, ms: Date.now() - t0 });
    });
  });
}

/** stdout of a command that must succeed; otherwise an error with its status and stderr. */
export async function output(cmd: string, args: string[], opts: RunOptions = {}): Promise<string> {
  const r = await runProcess(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.timedOut ? 'timed out' : `status ${r.code ?? r.signal}`}\n${r.stderr}`);
  return r.stdout;
}

/** Collects a long-running child's stdout and stderr as lines (e.g. JSON log lines). */
export function collectLines(child: ChildProcess): string[] {
  const lines: string[] = [];
  let buf = '';
  const onData = (d: Buffer): void => {
    buf += d.toString();
    const parts = buf.split('\n');
    buf = parts.pop() ?? '';
    lines.push(...parts.filter(Boolean));
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  return lines;
}
