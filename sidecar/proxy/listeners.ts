// One local listener per upstream broker, plus the bootstrap listener (--listen).
// Listeners open as brokers appear in metadata and close as they vanish; a broker that
// comes back gets its previous port again when it is still free, so clients holding old
// metadata reconnect to the right place.
import net from 'node:net';
import type { Logger } from '../log/log.js';
import type { BrokerAddr } from './cluster-view.js';
import { SOCKET_BUFFER_BYTES } from './upstream-socket.js';

export type Target = { kind: 'bootstrap' } | { kind: 'broker'; nodeId: number };

export class ListenerRegistry {
  private readonly servers = new Map<number, net.Server>();
  private readonly ports = new Map<number, number>();
  private readonly opening = new Map<number, Promise<number>>();
  private readonly lastPort = new Map<number, number>();
  private bootstrapServer?: net.Server;
  private closed = false;
  /** Called whenever a broker's listener port is bound or released (--state-dir journals the map). */
  onChange: () => void = () => {};

  constructor(
    readonly host: string,
    private readonly onConnection: (socket: net.Socket, target: Target) => void,
    private readonly log: Logger,
  ) {}

  async listenBootstrap(port: number): Promise<number> {
    const server = this.makeServer({ kind: 'bootstrap' });
    const bound = await listen(server, this.host, port);
    this.bootstrapServer = server;
    this.log.info({ listen: `${this.host}:${bound}` }, 'bootstrap listener bound');
    return bound;
  }

  /** The local port clients use for a broker, opening its listener when needed. */
  ensure(nodeId: number): Promise<number> {
    const known = this.ports.get(nodeId);
    if (known !== undefined) return Promise.resolve(known);
    let p = this.opening.get(nodeId);
    if (!p) {
      p = this.open(nodeId).finally(() => this.opening.delete(nodeId));
      this.opening.set(nodeId, p);
    }
    return p;
  }

  /** Opens listeners for new brokers, closes those of brokers no longer in the cluster. */
  async sync(brokers: Iterable<BrokerAddr>): Promise<void> {
    const live = new Set<number>();
    const waits: Promise<number>[] = [];
    for (const b of brokers) {
      live.add(b.nodeId);
      waits.push(this.ensure(b.nodeId));
    }
    for (const [nodeId, server] of this.servers) {
      if (!live.has(nodeId)) {
        this.servers.delete(nodeId);
        this.ports.delete(nodeId);
        server.close();
        this.log.info({ nodeId }, 'broker left the cluster metadata; closed its listener');
        this.onChange();
      }
    }
    await Promise.all(waits);
  }

  /** nodeId → local port of every bound broker listener (what --state-dir keeps). */
  boundPorts(): ReadonlyMap<number, number> {
    return this.ports;
  }

  /**
   * After a restart (--state-dir): the ports the previous process gave each broker, tried first
   * when their listeners open, so clients holding old metadata reconnect to the right place.
   */
  preferPorts(ports: Iterable<[number, number]>): void {
    for (const [nodeId, port] of ports) this.lastPort.set(nodeId, port);
  }

  listenerCount(): number {
    return this.servers.size;
  }

  /**
   * Stops accepting connections. Open connections are drained by their owners: server.close()'s
   * callback would wait for them, so it is not awaited here.
   */
  close(): void {
    this.closed = true;
    const all = [...this.servers.values()];
    if (this.bootstrapServer) all.push(this.bootstrapServer);
    this.servers.clear();
    this.ports.clear();
    for (const s of all) s.close();
  }

  private async open(nodeId: number): Promise<number> {
    if (this.closed) throw new Error('listeners are closed');
    const server = this.makeServer({ kind: 'broker', nodeId });
    let port: number;
    const previous = this.lastPort.get(nodeId);
    try {
      port = await listen(server, this.host, previous ?? 0);
    } catch (err) {
      if (previous === undefined) throw err;
      port = await listen(server, this.host, 0);
    }
    if (this.closed) {
      server.close();
      throw new Error('listeners are closed');
    }
    this.servers.set(nodeId, server);
    this.ports.set(nodeId, port);
    this.lastPort.set(nodeId, port);
    this.log.info({ nodeId, listen: `${this.host}:${port}` }, 'broker listener bound');
    this.onChange();
    return port;
  }

  private makeServer(target: Target): net.Server {
    // pauseOnConnect: nothing is read before the connection reads the socket into reused memory (socket-reads.ts).
    const server = net.createServer({ noDelay: true, pauseOnConnect: true, highWaterMark: SOCKET_BUFFER_BYTES }, (socket) => this.onConnection(socket, target));
    server.on('error', (err) => this.log.error({ err, target }, 'listener error'));
    return server;
  }
}

function listen(server: net.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', onError);
      resolve((server.address() as net.AddressInfo).port);
    });
  });
}
