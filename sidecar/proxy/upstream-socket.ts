// Opens a socket to a broker: plain TCP or TLS (CA file, optional client cert, SNI +
// hostname check). Credentials are never logged: SASL bytes pass through opaque.
import net from 'node:net';
import { requireCjs } from '../../api/require-cjs.js';
import { readFileSync } from 'node:fs';
import type { OnRead } from './socket-reads.js';

/** Upstream TLS as the command line gives it: file paths, read by loadTls. */
export interface UpstreamTls {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  serverName?: string;
}

export interface TlsMaterial {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  serverName?: string;
}

// node:tls (with OpenSSL's TLS state) costs ~5 MiB of resident memory: loaded only when a
// policy asks for TLS to the brokers.
const tlsModule = (): typeof import('node:tls') => requireCjs('node:tls') as typeof import('node:tls');

export function loadTls(opts: UpstreamTls | undefined): TlsMaterial | undefined {
  if (!opts) return undefined;
  return {
    ca: opts.caFile ? readFileSync(opts.caFile) : undefined,
    cert: opts.certFile ? readFileSync(opts.certFile) : undefined,
    key: opts.keyFile ? readFileSync(opts.keyFile) : undefined,
    serverName: opts.serverName,
  };
}

/**
 * Bytes a socket may hold in its write buffer before the proxy pauses the other side. Node's
 * default (16 KiB) is smaller than one produce request, so every request would pause and
 * resume the client; 1 MiB keeps requests flowing and still bounds memory per connection.
 */
export const SOCKET_BUFFER_BYTES = 1 << 20;

/**
 * Resolves once the connection (and TLS handshake) is up; rejects on error or timeout. The
 * socket is read into reused memory through `onread` (socket-reads.ts): no 'data' events.
 */
export function connectUpstream(host: string, port: number, tlsOpts: TlsMaterial | undefined, onread: OnRead, timeoutMs = 10_000): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    let socket: net.Socket;
    const onError = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const timer = setTimeout(() => onError(new Error(`connect to ${host}:${port} timed out after ${timeoutMs} ms`)), timeoutMs);
    const ready = (): void => {
      clearTimeout(timer);
      socket.off('error', onError);
      socket.setNoDelay(true);
      resolve(socket);
    };
    if (tlsOpts) {
      const servername = tlsOpts.serverName ?? (net.isIP(host) ? undefined : host);
      // tls.connect takes `onread` like net.connect (Node's docs; its typings omit it).
      socket = tlsModule().connect({ host, port, ca: tlsOpts.ca, cert: tlsOpts.cert, key: tlsOpts.key, servername, onread } as import('node:tls').ConnectionOptions, ready);
    } else {
      // net.Socket passes writableHighWaterMark on to its stream (Node's typings omit it).
      socket = net.connect({ host, port, writableHighWaterMark: SOCKET_BUFFER_BYTES, onread } as net.NetConnectOpts, ready);
    }
    socket.once('error', onError);
  });
}
