// The sidecar's own connections, one per broker, plus metadata refreshes through them.
// Used at start-up (readiness), by the upgrade engine, and for InitProducerId.
import type { Logger } from '../log/log.js';
import { ApiKey } from '../codec/api.js';
import { SUPPORTED_VERSIONS } from '../codec/supported.js';
import { decodeApiVersionsResponse } from '../codec/generated/api-versions-response.js';
import { encodeApiVersionsRequest } from '../codec/generated/api-versions-request.js';
import { decodeMetadataResponse } from '../codec/generated/metadata-response.js';
import { encodeMetadataRequest } from '../codec/generated/metadata-request.js';
import type { HostPort } from '../../api/flags.js';
import { BrokerClient, UpstreamError } from './broker-client.js';
import type { ClusterView } from './cluster-view.js';
import type { TlsMaterial } from './upstream-socket.js';
import type { SaslCredentials } from './sasl.js';
import type { OwnRequest } from './produce-hook.js';

export interface PoolOptions {
  bootstrap: HostPort[];
  tls?: TlsMaterial;
  sasl?: SaslCredentials;
  maxFrameBytes: number;
  requestTimeoutMs: number;
  log: Logger;
}

type Ranges = Map<number, { min: number; max: number }>;

export class BrokerPool {
  private readonly clients = new Map<number, BrokerClient>();
  private readonly versions = new Map<BrokerClient, Promise<Ranges>>();
  /** The same ranges once they came (send() picks a version without a promise then). */
  private readonly ranges = new WeakMap<BrokerClient, Ranges>();
  private bootstrapIndex = 0;
  private bootstrapClient?: BrokerClient;
  private closed = false;

  constructor(
    readonly cluster: ClusterView,
    private readonly opts: PoolOptions,
  ) {}

  /** A connection to a broker by node id (undefined when the broker is unknown). */
  forNode(nodeId: number): BrokerClient | undefined {
    const addr = this.cluster.brokers.get(nodeId);
    if (!addr) return undefined;
    let c = this.clients.get(nodeId);
    if (c && (c.host !== addr.host || c.port !== addr.port)) {
      c.close();
      c = undefined;
    }
    if (!c) {
      c = this.newClient(addr.host, addr.port);
      this.clients.set(nodeId, c);
    }
    return c;
  }

  /** Any live broker, else the next bootstrap address. */
  any(): BrokerClient {
    for (const nodeId of this.cluster.brokers.keys()) {
      const c = this.forNode(nodeId);
      if (c) return c;
    }
    return this.bootstrap();
  }

  /** The hook context's `send`: one request to a broker by node id, or to any broker; `req` is told how it ends, never from within send. */
  send(to: number | 'any', req: OwnRequest): void {
    let client: BrokerClient | undefined;
    try {
      client = to === 'any' ? this.any() : this.forNode(to);
    } catch (err) {
      queueMicrotask(() => req.failed(err as Error));
      return;
    }
    if (!client) {
      queueMicrotask(() => req.failed(new UpstreamError(`broker ${to} is not known`, 'connection')));
      return;
    }
    // A fixed version, or one this connection's ranges already give (the upgrader's Produce, every
    // send after the first), needs no lookup promise.
    const known = req.version ?? this.knownVersion(client, req.apiKey);
    if (known !== undefined) return client.send(req, known);
    const c = client;
    this.version(c, req.apiKey).then(
      (v) => c.send(req, v),
      (err: Error) => req.failed(err),
    );
  }

  /** The version `version()` would pick, when the broker's ranges are in already (else undefined: ask `version`). */
  private knownVersion(client: BrokerClient, apiKey: number): number | undefined {
    const ranges = this.ranges.get(client);
    const theirs = ranges?.get(apiKey);
    const ours = SUPPORTED_VERSIONS.get(apiKey);
    if (!theirs || !ours) return undefined;
    const v = Math.min(theirs.max, ours.max);
    return v < Math.max(theirs.min, ours.min) ? undefined : v;
  }

  /** Picks the highest version both sides speak. */
  async version(client: BrokerClient, apiKey: number): Promise<number> {
    let p = this.versions.get(client);
    if (!p) {
      p = this.fetchVersions(client);
      this.versions.set(client, p);
      p.then((r) => this.ranges.set(client, r), () => undefined);
      p.catch(() => this.versions.delete(client));
    }
    const ranges = await p;
    const theirs = ranges.get(apiKey);
    const ours = SUPPORTED_VERSIONS.get(apiKey);
    if (!theirs || !ours) throw new Error(`broker does not support API ${apiKey}`);
    const v = Math.min(theirs.max, ours.max);
    if (v < Math.max(theirs.min, ours.min)) throw new Error(`no common version for API ${apiKey}`);
    return v;
  }

  /** Refreshes metadata (all topics when `topics` is null) from some broker, rotating on failure. */
  async refreshMetadata(topics: string[] | null = null): Promise<void> {
    let lastErr: Error | undefined;
    const attempts = Math.max(2, this.opts.bootstrap.length + this.cluster.brokers.size);
    for (let i = 0; i < attempts; i++) {
      const client = i === 0 ? this.any() : this.bootstrap();
      try {
        const v = await this.version(client, ApiKey.Metadata);
        const r = await client.request(
          ApiKey.Metadata,
          v,
          (w) =>
            encodeMetadataRequest(
              w,
              {
                topics: topics === null ? null : topics.map((name) => ({ name, topicId: Buffer.alloc(16) })),
                allowAutoTopicCreation: false,
                includeClusterAuthorizedOperations: false,
                includeTopicAuthorizedOperations: false,
              },
              v,
            ),
          this.opts.requestTimeoutMs,
        );
        this.cluster.learnMetadata(decodeMetadataResponse(r, v));
        return;
      } catch (err) {
        lastErr = err as Error;
        this.opts.log.debug({ err: lastErr.message }, 'metadata refresh failed; trying another broker');
      }
    }
    throw lastErr ?? new Error('metadata refresh failed');
  }

  close(): void {
    this.closed = true;
    for (const c of this.clients.values()) c.close();
    this.bootstrapClient?.close();
    this.clients.clear();
  }

  private bootstrap(): BrokerClient {
    const addr = this.opts.bootstrap[this.bootstrapIndex++ % this.opts.bootstrap.length];
    this.bootstrapClient?.close();
    this.bootstrapClient = this.newClient(addr.host, addr.port);
    return this.bootstrapClient;
  }

  private newClient(host: string, port: number): BrokerClient {
    if (this.closed) throw new Error('broker pool closed');
    return new BrokerClient(host, port, {
      tls: this.opts.tls,
      sasl: this.opts.sasl,
      clientId: 'idempo-sidecar',
      maxFrameBytes: this.opts.maxFrameBytes,
      log: this.opts.log,
    });
  }

  private async fetchVersions(client: BrokerClient): Promise<Ranges> {
    // v3 is flexible and understood by every broker since 2.4; Kafka 4 keeps v0-v4.
    const v = 3;
    const r = await client.request(ApiKey.ApiVersions, v, (w) => encodeApiVersionsRequest(w, { clientSoftwareName: 'idempo', clientSoftwareVersion: '0.1.0' }, v), this.opts.requestTimeoutMs);
    const resp = decodeApiVersionsResponse(r, v);
    if (resp.errorCode !== 0) throw new Error(`ApiVersions failed with error ${resp.errorCode}`);
    const m: Ranges = new Map();
    for (const k of resp.apiKeys) m.set(k.apiKey, { min: k.minVersion, max: k.maxVersion });
    return m;
  }
}
