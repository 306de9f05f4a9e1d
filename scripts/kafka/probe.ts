// Minimal Kafka readiness probe: one Metadata v4 request over a raw socket, no client library.
// A KRaft broker only opens its client listener once it has caught up with the metadata log
// and been unfenced, so "answers Metadata listing N brokers" means "ready for clients".
// Used by scripts/kafka/up.sh (run directly by Node's type stripping) and test/support/kafka.ts.
// Keep it erasable-syntax only (no enums, no parameter properties) so `node probe.ts` works.
import net from 'node:net';

export interface ProbeBroker {
  id: number;
  host: string;
  port: number;
}

export interface ProbePartition {
  partition: number;
  errorCode: number;
  leader: number;
  replicas: number[];
  isr: number[];
}

export interface ProbeTopic {
  name: string;
  errorCode: number;
  partitions: ProbePartition[];
}

export interface ProbeResult {
  brokers: ProbeBroker[];
  controllerId: number;
  clusterId: string | null;
  /** Only the topics asked for (never auto-created by the probe). */
  topics: ProbeTopic[];
}

/** One Metadata v4 round trip (brokers, plus `topics` if given). Rejects on connection errors or timeout. */
export function probeMetadata(host: string, port: number, timeoutMs = 2000, topics: string[] = []): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    const clientId = Buffer.from('idempo-probe');
    const names = topics.map((t) => Buffer.from(t));
    const body = Buffer.alloc(2 + 2 + 4 + 2 + clientId.length + 4 + names.reduce((n, b) => n + 2 + b.length, 0) + 1);
    let o = 0;
    o = body.writeInt16BE(3, o); // Metadata
    o = body.writeInt16BE(4, o); // v4: oldest version Kafka 4.x still accepts, not flexible
    o = body.writeInt32BE(1, o); // correlation id
    o = body.writeInt16BE(clientId.length, o);
    o += clientId.copy(body, o);
    o = body.writeInt32BE(names.length, o); // empty list: brokers only
    for (const b of names) {
      o = body.writeInt16BE(b.length, o);
      o += b.copy(body, o);
    }
    body.writeInt8(0, o); // allow_auto_topic_creation = false
    const frame = Buffer.concat([Buffer.alloc(4), body]);
    frame.writeInt32BE(body.length, 0);

    const sock = net.connect({ host, port });
    let buf = Buffer.alloc(0);
    const done = (err: Error | null, res?: ProbeResult) => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(res!);
    };
    const timer = setTimeout(() => done(new Error(`metadata probe timed out after ${timeoutMs} ms`)), timeoutMs);
    sock.on('connect', () => sock.write(frame));
    sock.on('error', (e) => done(e));
    sock.on('close', () => done(new Error('connection closed before a metadata answer')));
    sock.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < 4 || buf.length < 4 + buf.readInt32BE(0)) return;
      try {
        done(null, parseMetadataV4(buf.subarray(4, 4 + buf.readInt32BE(0))));
      } catch (e) {
        done(e as Error);
      }
    });
  });
}

function parseMetadataV4(b: Buffer): ProbeResult {
  let o = 4 + 4; // correlation id, throttle_time_ms
  const str = (): string | null => {
    const len = b.readInt16BE(o);
    o += 2;
    if (len < 0) return null;
    const s = b.toString('utf8', o, o + len);
    o += len;
    return s;
  };
  const n = b.readInt32BE(o);
  o += 4;
  const brokers: ProbeBroker[] = [];
  for (let i = 0; i < n; i++) {
    const id = b.readInt32BE(o);
    o += 4;
    const host = str() ?? '';
    const port = b.readInt32BE(o);
    o += 4;
    str(); // rack
    brokers.push({ id, host, port });
  }
  const clusterId = str();
  const controllerId = b.readInt32BE(o);
  o += 4;
  const i16 = () => {
    o += 2;
    return b.readInt16BE(o - 2);
  };
  const i32 = () => {
    o += 4;
    return b.readInt32BE(o - 4);
  };
  const i32s = () => Array.from({ length: i32() }, i32);
  const topics: ProbeTopic[] = [];
  for (let t = i32(); t > 0; t--) {
    const errorCode = i16();
    const name = str() ?? '';
    o += 1; // is_internal
    const partitions: ProbePartition[] = [];
    for (let p = i32(); p > 0; p--) {
      const perr = i16();
      const partition = i32();
      const leader = i32();
      partitions.push({ partition, errorCode: perr, leader, replicas: i32s(), isr: i32s() });
    }
    topics.push({ name, errorCode, partitions: partitions.sort((x, y) => x.partition - y.partition) });
  }
  return { brokers: brokers.sort((a, b2) => a.id - b2.id), controllerId, clusterId, topics };
}

/** Polls until the broker at host:port answers Metadata listing at least `expectBrokers` brokers. */
export async function waitForBrokers(
  host: string,
  port: number,
  expectBrokers: number,
  timeoutMs: number,
  isAlive: () => boolean = () => true,
): Promise<ProbeResult> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  for (;;) {
    if (!isAlive()) throw new Error(`broker process exited while waiting for ${host}:${port} (${last})`);
    try {
      const res = await probeMetadata(host, port, Math.min(2000, Math.max(100, deadline - Date.now())));
      if (res.brokers.length >= expectBrokers) return res;
      last = `metadata lists ${res.brokers.length}/${expectBrokers} brokers`;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() >= deadline) throw new Error(`Kafka at ${host}:${port} not ready after ${timeoutMs} ms: ${last}`);
    // Poll interval, not a fixed wait: the loop ends as soon as the condition holds.
    await new Promise((r) => setTimeout(r, 100));
  }
}

// CLI: node scripts/kafka/probe.ts HOST:PORT [EXPECT_BROKERS=1] [TIMEOUT_MS=60000] [PID]
if (process.argv[1] && import.meta.filename === (await import('node:path')).resolve(process.argv[1])) {
  const [hp, nb = '1', tm = '60000', pid] = process.argv.slice(2);
  const i = hp.lastIndexOf(':');
  const alive = () => {
    if (!pid) return true;
    try {
      process.kill(Number(pid), 0);
      return true;
    } catch {
      return false;
    }
  };
  try {
    const res = await waitForBrokers(hp.slice(0, i), Number(hp.slice(i + 1)), Number(nb), Number(tm), alive);
    console.log(JSON.stringify(res));
  } catch (e) {
    console.error((e as Error).message);
    process.exit(1);
  }
}
