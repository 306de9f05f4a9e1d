// Backpressure: a socket's reader stays paused while any reason to pause holds (the other
// side's write buffer is full, too many answers pending, still connecting, draining).
import type net from 'node:net';

export class ReadGate {
  private readonly reasons = new Set<string>();
  private socket: net.Socket | undefined;

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
}
