// Backpressure: a socket's reader stays paused while any reason to pause holds (the other
// side's write buffer is full, too many answers pending, still connecting, draining).
import type net from 'node:net';

export class ReadGate {
  private readonly reasons = new Set<string>();
  private socket: net.Socket | undefined;
  private stopped: number | undefined;

  constructor(socket?: net.Socket) {
    this.socket = socket;
  }

  /** Points the gate at a new socket (a re-dialled upstream); the reasons in force carry over. */
  attach(socket: net.Socket): void {
    this.socket = socket;
    if (this.reasons.size > 0) socket.pause();
    else socket.resume();
  }

  pause(reason: string): void {
    if (this.reasons.size === 0) this.stopped ??= Date.now();
    this.reasons.add(reason);
    this.socket?.pause();
  }

  resume(reason: string): void {
    if (!this.reasons.delete(reason)) return;
    if (this.reasons.size === 0 && this.socket && !this.socket.destroyed) this.socket.resume();
  }

  get paused(): boolean {
    return this.reasons.size > 0;
  }

  /**
   * When reads first stopped since the reader last caught up (ms since epoch), or undefined.
   * Bytes read after a pause may have waited in the kernel since then: the peer's own timers
   * (a request timeout) started before the sidecar saw them.
   */
  get stoppedSince(): number | undefined {
    return this.stopped;
  }

  /** The reader emptied the socket while not paused: what it reads next was sent after now. */
  caughtUp(): void {
    if (this.reasons.size === 0) this.stopped = undefined;
  }
}
