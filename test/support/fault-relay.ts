// A fault-injecting TCP relay for tests: real sockets on 127.0.0.1, one listening port per
// target ("link"), every accepted connection paired with its own connection to the target.
// While injection is on, each direction of each connection counts the bytes it forwards and,
// at a byte position drawn from a seeded PRNG, fires one fault:
//   reset      — the chunk holding that byte is dropped, both sockets destroyed;
//   half_write — the chunk is forwarded only up to that byte, then both sockets destroyed
//                (the peer sees half a Kafka frame);
//   stall      — nothing more is forwarded either way for stallMs (longer than the request
//                timeout under test), then both sockets destroyed;
//   drop       — one whole Kafka frame (4-byte length prefix) is swallowed and the connection
//                stays open: a lost answer the requester only notices by its own timeout.
//                A direction whose weights enable drop is relayed frame by frame.
// Decisions depend only on (seed, connection number, direction, byte counts), never on the
// clock: the same byte streams get the same faults. close() ends every socket and server.
// One targeted fault for tests that need it at an exact point: `dropNextRequest(match)` swallows
// the next request frame (any connection) that `match` accepts (relay built with framedUp).
import net from 'node:net';

export type FaultKind = 'reset' | 'half_write' | 'stall' | 'drop';
export const FAULT_KINDS: readonly FaultKind[] = ['reset', 'half_write', 'stall', 'drop'];
/** Relative weights of the kinds; a kind left out has weight 0. */
export type FaultWeights = Partial<Record<FaultKind, number>>;

/** up = towards the target (requests), down = back to the connecting side (answers). */
export type Direction = 'up' | 'down';

/** mulberry32: a tiny 32-bit seeded PRNG, uniform in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Mixes numbers into one 32-bit seed (murmur3 finaliser per step), so derived streams differ. */
export function mixSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x85ebca6b);
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35);
    h ^= h >>> 16;
  }
  return h >>> 0;
}

export interface FaultPlanOptions {
  /** Bytes between two faults in one direction of one connection: uniform in [min, max]. */
  gapBytes: Record<Direction, [number, number]>;
  /** Relative weights of the kinds (0 disables a kind). */
  weights: FaultWeights;
  /** Weights for the down direction only (answers), when they differ. */
  weightsDown?: FaultWeights;
}

export interface FaultDecision {
  kind: FaultKind;
  /** Bytes of the chunk forwarded before the fault (half_write: 1..len-1; others: 0). */
  forward: number;
}

/**
 * The pure decision maker for one direction of one connection: fed chunk lengths, says
 * where (if anywhere) the next fault falls. `allow` lets the relay veto kinds that reached
 * their cap; the draw is the same either way, so a veto shifts no later decision.
 */
export class FaultPlan {
  private readonly rng: () => number;
  private untilFault: number;

  constructor(
    seed: number,
    private readonly dir: Direction,
    private readonly opts: FaultPlanOptions,
  ) {
    this.rng = mulberry32(seed);
    this.untilFault = this.gap();
  }

  /** Called for every chunk while injection is on; null = forward it whole. */
  next(len: number, allow: (k: FaultKind) => boolean = () => true): FaultDecision | null {
    if (len <= 0) return null;
    if (this.untilFault > len) {
      this.untilFault -= len;
      return null;
    }
    const at = this.untilFault; // 1..len: the fault falls on this byte of the chunk
    this.untilFault = this.gap();
    const kind = this.pick(allow);
    if (!kind) return null;
    if (kind !== 'half_write') return { kind, forward: 0 };
    // At least one byte forwarded and at least one withheld, so the frame really is cut.
    if (len < 2) return { kind: 'reset', forward: 0 };
    return { kind, forward: Math.min(Math.max(at, 1), len - 1) };
  }

  private gap(): number {
    const [min, max] = this.opts.gapBytes[this.dir];
    return min + Math.floor(this.rng() * (max - min + 1));
  }

  /** Whether this direction may drop frames (then the relay must forward it frame by frame). */
  get framed(): boolean {
    return (weightsOf(this.opts, this.dir).drop ?? 0) > 0;
  }

  private pick(allow: (k: FaultKind) => boolean): FaultKind | undefined {
    const r = this.rng();
    const w = weightsOf(this.opts, this.dir);
    const kinds = FAULT_KINDS.filter((k) => (w[k] ?? 0) > 0 && allow(k));
    const total = kinds.reduce((s, k) => s + (w[k] ?? 0), 0);
    if (total === 0) return undefined;
    let x = r * total;
    for (const k of kinds) {
      x -= w[k] ?? 0;
      if (x < 0) return k;
    }
    return kinds[kinds.length - 1];
  }
}

function weightsOf(opts: FaultPlanOptions, dir: Direction): FaultWeights {
  return (dir === 'down' && opts.weightsDown) || opts.weights;
}

export interface FaultRelayOptions extends Partial<FaultPlanOptions> {
  seed: number;
  /** How long a stalled connection holds its bytes before it is reset (default 10 s). */
  stallMs?: number;
  /** At most this many faults of a kind over the relay's life (e.g. bound the time stalls cost). */
  limits?: Partial<Record<FaultKind, number>>;
  host?: string;
  /** Relay requests frame by frame (needed by dropNextRequest; changes where seeded faults fall). */
  framedUp?: boolean;
}

export interface FaultCounters {
  connections: number;
  /** Connections whose target could not be reached (e.g. a stopped broker). */
  connectFailures: number;
  faults: Record<FaultKind, number>;
  bytes: Record<Direction, number>;
}

interface Link {
  server: net.Server;
  port: number;
  target: { host: string; port: number };
}

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
  stallTimer?: NodeJS.Timeout;
  /** A fault fired: nothing more is forwarded either way. */
  halted: boolean;
  dead: boolean;
}

const DEFAULT_PLAN: FaultPlanOptions = {
  gapBytes: { up: [64 * 1024, 256 * 1024], down: [2 * 1024, 8 * 1024] },
  weights: { reset: 1, half_write: 1, stall: 0 },
};

export class FaultRelay {
  readonly host: string;
  private plan: FaultPlanOptions;
  private readonly links = new Map<number, Link>();
  private readonly pairs = new Set<Pair>();
  private connectionNo = 0;
  private seed: number;
  private injecting = false;
  private closed = false;
  readonly counters: FaultCounters = {
    connections: 0,
    connectFailures: 0,
    faults: { reset: 0, half_write: 0, stall: 0, drop: 0 },
    bytes: { up: 0, down: 0 },
  };

  constructor(private readonly opts: FaultRelayOptions) {
    this.host = opts.host ?? '127.0.0.1';
    this.seed = opts.seed;
    this.plan = { gapBytes: opts.gapBytes ?? DEFAULT_PLAN.gapBytes, weights: opts.weights ?? DEFAULT_PLAN.weights, weightsDown: opts.weightsDown };
  }

  /** Opens a listening port forwarding to `target`; resolves with the port. */
  async addLink(target: { host: string; port: number }, listenPort = 0): Promise<number> {
    if (this.closed) throw new Error('relay closed');
    const link: Link = { server: undefined!, port: listenPort, target };
    await this.listen(link);
    link.port = (link.server.address() as net.AddressInfo).port;
    this.links.set(link.port, link);
    return link.port;
  }

  private async listen(link: Link): Promise<void> {
    const server = net.createServer({ noDelay: true, pauseOnConnect: true }, (s) => this.accept(s, link));
    link.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.host, port: link.port, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  }

  /**
   * Starts a new round with `seed`: counters to zero, connections numbered from 0 again, so a
   * second workload (e.g. without the sidecar) meets the same fault sequence. Open connections
   * keep their plans. `plan` changes gaps or weights for the connections of the new round.
   */
  restart(seed: number, plan: Partial<FaultPlanOptions> = {}): void {
    this.seed = seed;
    this.plan = { ...this.plan, ...plan };
    this.connectionNo = 0;
    Object.assign(this.counters, { connections: 0, connectFailures: 0, faults: { reset: 0, half_write: 0, stall: 0, drop: 0 }, bytes: { up: 0, down: 0 } });
  }

  /** Faults fire only between start() and stop(); byte positions count only meanwhile. */
  start(): void {
    this.injecting = true;
  }

  stop(): void {
    this.injecting = false;
  }

  get injectingFaults(): boolean {
    return this.injecting;
  }

  get openConnections(): number {
    return this.pairs.size;
  }

  totalFaults(): number {
    return FAULT_KINDS.reduce((s, k) => s + this.counters.faults[k], 0);
  }

  /** Armed by dropNextRequest: the next request frame it matches is swallowed. */
  private targeted?: { match: (payload: Buffer) => boolean; done: () => void };

  /**
   * The next request frame (towards a target, on any connection) for which `match(payload)`
   * holds — payload = the frame without its size prefix: apiKey at 0 — is swallowed, the
   * connection kept open; counted as a drop. Resolves once it happened. Needs `framedUp`.
   */
  dropNextRequest(match: (payload: Buffer) => boolean): Promise<void> {
    if (!this.opts.framedUp) throw new Error('dropNextRequest needs a relay built with framedUp');
    return new Promise((done) => (this.targeted = { match, done }));
  }

  /**
   * Closes every listening port, so new connections are refused (ECONNREFUSED: a broker that is
   * down); open connections are left as they are. acceptConnections() listens again on the same ports.
   */
  refuseConnections(): void {
    // close() stops listening at once; its callback would wait for the open connections.
    for (const l of this.links.values()) l.server.close();
  }

  async acceptConnections(): Promise<void> {
    await Promise.all([...this.links.values()].filter((l) => !l.server.listening).map((l) => this.listen(l)));
  }

  /** Resets every open connection now (not counted as a fault). */
  resetAll(): void {
    for (const p of [...this.pairs]) this.kill(p);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.injecting = false;
    const servers = [...this.links.values()].map((l) => l.server);
    this.links.clear();
    const closing = servers.map((s) => new Promise<void>((r) => s.close(() => r())));
    this.resetAll();
    await Promise.all(closing);
  }

  private accept(client: net.Socket, link: Link): void {
    if (this.closed) {
      client.destroy();
      return;
    }
    const n = this.connectionNo++;
    this.counters.connections++;
    client.setNoDelay(true);
    const upstream = net.connect({ host: link.target.host, port: link.target.port, noDelay: true });
    upstream.pause();
    const pair: Pair = { client, upstream, halted: false, dead: false };
    this.pairs.add(pair);
    const plans: Record<Direction, FaultPlan> = {
      up: new FaultPlan(mixSeed(this.seed, n, 1), 'up', this.plan),
      down: new FaultPlan(mixSeed(this.seed, n, 2), 'down', this.plan),
    };
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      client.resume();
      upstream.resume();
    });
    client.on('error', () => this.kill(pair));
    upstream.on('error', () => {
      if (!connected) this.counters.connectFailures++;
      this.kill(pair);
    });
    client.on('close', () => this.kill(pair));
    upstream.on('close', () => this.kill(pair));
    this.pipe(pair, client, upstream, 'up', plans.up);
    this.pipe(pair, upstream, client, 'down', plans.down);
  }

  private pipe(pair: Pair, from: net.Socket, to: net.Socket, dir: Direction, plan: FaultPlan): void {
    const forward = (chunk: Buffer, whole = false): void => {
      if (pair.halted) return;
      const t = this.targeted;
      if (whole && dir === 'up' && t?.match(chunk.subarray(4))) {
        this.targeted = undefined;
        this.counters.faults.drop++;
        t.done();
        return;
      }
      const d = this.injecting ? plan.next(chunk.length, (k) => this.allowed(k)) : null;
      if (d) {
        this.counters.faults[d.kind]++;
        if (d.kind === 'drop') return; // the frame vanishes, the connection lives on
        pair.halted = true;
        if (d.kind === 'stall') return this.stall(pair);
        if (d.forward > 0) {
          this.counters.bytes[dir] += d.forward;
          // Destroy only once the partial chunk is handed to the kernel, so the peer sees it.
          to.write(chunk.subarray(0, d.forward), () => this.kill(pair));
          from.pause();
          return;
        }
        return this.kill(pair);
      }
      this.counters.bytes[dir] += chunk.length;
      if (!to.write(chunk)) {
        from.pause();
        to.once('drain', () => {
          if (!pair.halted) from.resume();
        });
      }
    };
    if (!plan.framed && !(dir === 'up' && this.opts.framedUp)) {
      from.on('data', (chunk: Buffer) => forward(chunk));
      return;
    }
    // Frame by frame (so a drop takes exactly one Kafka frame): hold bytes until a frame is whole.
    let held: Buffer = Buffer.alloc(0);
    from.on('data', (chunk: Buffer) => {
      held = held.length === 0 ? chunk : Buffer.concat([held, chunk]);
      while (held.length >= 4 && held.length >= 4 + held.readInt32BE(0)) {
        const size = 4 + held.readInt32BE(0);
        forward(held.subarray(0, size), true);
        held = held.subarray(size);
      }
    });
  }

  private allowed(k: FaultKind): boolean {
    const cap = this.opts.limits?.[k];
    return cap === undefined || this.counters.faults[k] < cap;
  }

  private stall(pair: Pair): void {
    // Hold everything: read nothing more (the kernel buffers fill, senders block), send nothing.
    pair.client.pause();
    pair.upstream.pause();
    pair.stallTimer = setTimeout(() => this.kill(pair), this.opts.stallMs ?? 10_000);
  }

  private kill(pair: Pair): void {
    if (pair.dead) return;
    pair.dead = true;
    pair.halted = true;
    clearTimeout(pair.stallTimer);
    pair.client.destroy();
    pair.upstream.destroy();
    this.pairs.delete(pair);
  }
}
