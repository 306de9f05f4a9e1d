// The fault relay on real sockets: a byte-counting echo server behind it, faults at known
// byte positions (a gap range of one value makes the PRNG's position choice fixed).
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { FaultPlan, FaultRelay, mulberry32, mixSeed, type FaultKind } from './fault-relay.js';
import { waitFor } from './poll.js';

interface Echo {
  port: number;
  /** Bytes received per accepted connection. */
  received: number[];
  close(): Promise<void>;
}

/** Echoes everything back; `silent` only counts (so a client sees nothing come back). */
async function echoServer(silent = false): Promise<Echo> {
  const sockets = new Set<net.Socket>();
  const received: number[] = [];
  const server = net.createServer((s) => {
    const i = received.push(0) - 1;
    sockets.add(s);
    s.on('data', (d) => {
      received[i] += d.length;
      if (!silent) s.write(d);
    });
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    received,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

interface Client {
  socket: net.Socket;
  got: () => number;
  closed: Promise<void>;
}

async function connect(port: number): Promise<Client> {
  const socket = net.connect({ host: '127.0.0.1', port });
  let got = 0;
  socket.on('data', (d) => (got += d.length));
  socket.on('error', () => {});
  const closed = new Promise<void>((r) => socket.once('close', () => r()));
  await new Promise<void>((r, j) => {
    socket.once('connect', () => r());
    socket.once('error', j);
  });
  return { socket, got: () => got, closed };
}

const until = (cond: () => boolean): Promise<true> => waitFor(cond.toString(), () => cond(), 30_000, 5);

const only = (k: FaultKind) => ({ reset: 0, half_write: 0, stall: 0, drop: 0, [k]: 1 });

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(opts: ConstructorParameters<typeof FaultRelay>[0], silent = false) {
  const echo = await echoServer(silent);
  cleanups.push(() => echo.close());
  const relay = new FaultRelay(opts);
  cleanups.push(() => relay.close());
  const port = await relay.addLink({ host: '127.0.0.1', port: echo.port });
  return { echo, relay, port };
}

describe('seeded decisions', () => {
  it('mulberry32 repeats for a seed and differs across seeds', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const c = mulberry32(43);
    const xs = Array.from({ length: 5 }, () => a());
    expect(Array.from({ length: 5 }, () => b())).toEqual(xs);
    expect(Array.from({ length: 5 }, () => c())).not.toEqual(xs);
    for (const x of xs) expect(x >= 0 && x < 1).toBe(true);
    expect(mixSeed(1, 2, 3)).not.toBe(mixSeed(1, 3, 2));
  });

  it('a plan gives the same faults for the same seed and chunks, and others for another seed', () => {
    const opts = { gapBytes: { up: [100, 5000], down: [10, 50] } as Record<'up' | 'down', [number, number]>, weights: { reset: 1, half_write: 2, stall: 1 } };
    const chunks = Array.from({ length: 400 }, (_, i) => 1 + ((i * 7919) % 1500));
    const run = (seed: number) => {
      const p = new FaultPlan(seed, 'up', opts);
      return chunks.map((len, i) => ({ i, d: p.next(len) })).filter((x) => x.d !== null);
    };
    const a = run(7);
    expect(a.length).toBeGreaterThan(10);
    expect(run(7)).toEqual(a);
    expect(run(8)).not.toEqual(a);
    const kinds = new Set(a.map((x) => x.d!.kind));
    expect(kinds).toEqual(new Set(['reset', 'half_write', 'stall']));
  });

  it('a fault falls on the drawn byte; half_write cuts the chunk there', () => {
    const p = new FaultPlan(1, 'up', { gapBytes: { up: [100, 100], down: [1, 1] }, weights: only('half_write') });
    expect(p.next(30)).toBeNull(); // bytes 1..30
    expect(p.next(30)).toBeNull(); // ..60
    expect(p.next(30)).toBeNull(); // ..90
    expect(p.next(30)).toEqual({ kind: 'half_write', forward: 10 }); // byte 100 is the 10th of this chunk
    expect(p.next(99)).toBeNull(); // the next gap is again 100 bytes
    expect(p.next(1)).toEqual({ kind: 'reset', forward: 0 }); // a 1-byte chunk cannot be cut: reset
  });

  it('a vetoed kind draws the same numbers, so later faults do not move', () => {
    const opts = { gapBytes: { up: [50, 500], down: [1, 1] } as Record<'up' | 'down', [number, number]>, weights: { reset: 1, half_write: 1, stall: 1 } };
    const a = new FaultPlan(3, 'up', opts);
    const b = new FaultPlan(3, 'up', opts);
    for (let i = 0; i < 200; i++) {
      const x = a.next(37);
      const y = b.next(37, (k) => k !== 'stall');
      if (x === null || x.kind === 'stall') expect(y === null || y.kind !== 'stall').toBe(true);
      else expect(y).not.toBeNull();
    }
  });
});

describe('relay on real sockets', () => {
  it('forwards both ways untouched while injection is off', async () => {
    const { relay, port, echo } = await setup({ seed: 1, gapBytes: { up: [1, 1], down: [1, 1] } });
    const c = await connect(port);
    c.socket.write(Buffer.alloc(100_000, 7));
    await until(() => c.got() === 100_000);
    expect(echo.received).toEqual([100_000]);
    expect(relay.counters.bytes).toEqual({ up: 100_000, down: 100_000 });
    expect(relay.totalFaults()).toBe(0);
    c.socket.destroy();
  });

  it('reset: the chunk holding the drawn byte is dropped and both sides are closed', async () => {
    const { relay, port, echo } = await setup({ seed: 2, weights: only('reset'), gapBytes: { up: [10, 10], down: [1_000_000, 1_000_000] } });
    relay.start();
    const c = await connect(port);
    c.socket.write(Buffer.alloc(5));
    await until(() => c.got() === 5);
    c.socket.write(Buffer.alloc(10)); // bytes 6..15 hold byte 10
    await c.closed;
    await until(() => relay.openConnections === 0);
    expect(echo.received).toEqual([5]);
    expect(relay.counters.faults).toEqual({ reset: 1, half_write: 0, stall: 0, drop: 0 });
  });

  it('half_write: the peer gets part of the chunk, then the connection is reset', async () => {
    const { relay, port, echo } = await setup({ seed: 3, weights: only('half_write'), gapBytes: { up: [1_000_000, 1_000_000], down: [25, 25] } });
    relay.start();
    const c = await connect(port);
    c.socket.write(Buffer.alloc(40)); // echoed back as one chunk: the answer is cut after 25 bytes
    await c.closed;
    expect(echo.received).toEqual([40]);
    expect(c.got()).toBe(25);
    expect(relay.counters.faults.half_write).toBe(1);
  });

  it('stall: bytes are held, then both sides are reset', async () => {
    const { relay, port, echo } = await setup({ seed: 4, weights: only('stall'), stallMs: 200, gapBytes: { up: [8, 8], down: [1_000_000, 1_000_000] } });
    relay.start();
    const c = await connect(port);
    c.socket.write(Buffer.alloc(8));
    await until(() => relay.counters.faults.stall === 1);
    c.socket.write(Buffer.alloc(1000)); // held too
    await c.closed;
    expect(c.got()).toBe(0);
    expect(echo.received).toEqual([0]);
    expect(relay.openConnections).toBe(0);
  });

  it('drop: a whole frame vanishes and the connection stays open', async () => {
    // Answers only; frames of 10 bytes (4-byte length + 6): the fault falls on byte 15, i.e. in frame 2.
    const { relay, port, echo } = await setup({ seed: 8, weights: {}, weightsDown: only('drop'), gapBytes: { up: [1_000_000, 1_000_000], down: [15, 15] } });
    relay.start();
    const c = await connect(port);
    const frames: number[] = [];
    let buf = Buffer.alloc(0);
    c.socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 10) {
        frames.push(buf.readUInt16BE(4));
        buf = buf.subarray(10);
      }
    });
    const frame = (n: number) => Buffer.concat([Buffer.from([0, 0, 0, 6]), Buffer.from([0, 0, 0, 0, 0, 0])]).fill(n, 5, 6);
    // Written in pieces that split frames, so the relay must reassemble them before deciding.
    const all = Buffer.concat([1, 2, 3, 4, 5].map(frame));
    c.socket.write(all.subarray(0, 7));
    c.socket.write(all.subarray(7, 33));
    c.socket.write(all.subarray(33));
    await until(() => echo.received[0] === 50 && frames.length === 3);
    expect(frames).toEqual([1, 3, 5]); // after a drop the next gap (15) again ends in the frame after next
    expect(relay.counters.faults.drop).toBe(2);
    expect(relay.openConnections).toBe(1);
    c.socket.destroy();
  });

  it('limits cap a kind; stop() ends injection', async () => {
    const { relay, port } = await setup({ seed: 5, weights: only('reset'), limits: { reset: 1 }, gapBytes: { up: [4, 4], down: [1_000_000, 1_000_000] } });
    relay.start();
    const a = await connect(port);
    a.socket.write(Buffer.alloc(4));
    await a.closed;
    const b = await connect(port);
    b.socket.write(Buffer.alloc(100));
    await until(() => b.got() === 100); // the cap was reached: no second reset
    relay.stop();
    b.socket.write(Buffer.alloc(100));
    await until(() => b.got() === 200);
    expect(relay.counters.faults.reset).toBe(1);
    b.socket.destroy();
  });

  it('an unreachable target closes the connecting side and is counted', async () => {
    const relay = new FaultRelay({ seed: 6 });
    cleanups.push(() => relay.close());
    const dead = await echoServer();
    const deadPort = dead.port;
    await dead.close();
    const port = await relay.addLink({ host: '127.0.0.1', port: deadPort });
    const c = await connect(port);
    await c.closed;
    expect(relay.counters.connectFailures).toBe(1);
  });

  it('close() closes every connection and listening port', async () => {
    const { relay, port } = await setup({ seed: 7 });
    const clients = await Promise.all([connect(port), connect(port), connect(port)]);
    await until(() => relay.openConnections === 3);
    await relay.close();
    await Promise.all(clients.map((c) => c.closed));
    expect(relay.openConnections).toBe(0);
    await expect(connect(port)).rejects.toThrow(/ECONNREFUSED/);
  });
});
