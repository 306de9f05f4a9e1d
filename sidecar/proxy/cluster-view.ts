// What the sidecar knows of the cluster, learned from every Metadata answer it sees
// (the client's and its own): broker addresses, partition leaders, topic ids (Produce
// v13 names topics by id, so the engine needs the id -> name map).
import type { MetadataResponse } from '../codec/generated/metadata-response.js';

export interface BrokerAddr {
  nodeId: number;
  host: string;
  port: number;
  rack: string | null;
}

export class ClusterView {
  readonly brokers = new Map<number, BrokerAddr>();
  private readonly leaders = new Map<string, Map<number, number>>();
  private readonly idToName = new Map<string, string>();
  private readonly nameToId = new Map<string, Buffer>();
  private waiters: Array<() => void> = [];
  /** Set once any Metadata answer has been seen: /readyz depends on it. */
  metadataSeen = false;

  /** Everything a Metadata answer says: every broker, and each topic's id and partition leaders. */
  learnMetadata(m: MetadataResponse): void {
    this.setBrokers(m.brokers.map((b) => ({ nodeId: b.nodeId, host: b.host, port: b.port, rack: b.rack ?? null })));
    for (const t of m.topics) {
      if (t.name === null || t.errorCode !== 0) continue;
      this.setTopic(t.name, t.topicId ?? null, t.partitions.map((p) => ({ partition: p.partitionIndex, leader: p.leaderId })));
    }
  }

  setBrokers(list: readonly BrokerAddr[]): void {
    this.brokers.clear();
    for (const b of list) this.brokers.set(b.nodeId, b);
    this.metadataSeen = true;
    this.wake();
  }

  /** A broker learned outside a full Metadata answer (coordinator, KIP-951 endpoint). */
  noteBroker(b: BrokerAddr): void {
    const known = this.brokers.get(b.nodeId);
    if (known && known.host === b.host && known.port === b.port) return;
    this.brokers.set(b.nodeId, b);
    this.wake();
  }

  setTopic(name: string, topicId: Buffer | null, partitions: ReadonlyArray<{ partition: number; leader: number }>): void {
    let m = this.leaders.get(name);
    if (!m) {
      m = new Map();
      this.leaders.set(name, m);
    }
    for (const p of partitions) m.set(p.partition, p.leader);
    if (topicId && !isZeroUuid(topicId)) {
      this.idToName.set(idKey(topicId), name);
      this.nameToId.set(name, topicId);
    }
    this.wake();
  }

  /** A leader learned from a produce error's CurrentLeader field (KIP-951). */
  setLeader(topic: string, partition: number, leader: number): void {
    this.setTopic(topic, null, [{ partition, leader }]);
  }

  leaderOf(topic: string, partition: number): number | undefined {
    const l = this.leaders.get(topic)?.get(partition);
    return l === undefined || l < 0 ? undefined : l;
  }

  /** A broker's metadata named this topic with at least one partition. */
  knowsTopic(name: string): boolean {
    return (this.leaders.get(name)?.size ?? 0) > 0;
  }

  /** Metadata listed this partition of the topic (its leader may be unknown for a moment). */
  knowsPartition(name: string, partition: number): boolean {
    return this.leaders.get(name)?.has(partition) ?? false;
  }

  topicName(topicId: Buffer): string | undefined {
    return this.idToName.get(idKey(topicId));
  }

  topicId(name: string): Buffer | undefined {
    return this.nameToId.get(name);
  }

  /** Resolves at the next change (or after timeoutMs) — lets retry loops wait on new metadata. */
  changed(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, timeoutMs);
      t.unref?.();
      const self = this;
      function done(): void {
        clearTimeout(t);
        self.waiters = self.waiters.filter((w) => w !== done);
        resolve();
      }
      this.waiters.push(done);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

export function isZeroUuid(id: Buffer): boolean {
  for (let i = 0; i < id.length; i++) if (id[i] !== 0) return false;
  return true;
}

/** Map key of a topic id, looked up for every part of every Produce v13: latin1 is a plain 16-char copy (hex encoded 32). */
const idKey = (topicId: Buffer): string => topicId.toString('latin1');
