import net from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/support/poll.js';
import { readAcceptedInto, SocketReads } from './socket-reads.js';

/** A server whose accepted sockets are read into reused memory; `onRead` sees each read and the SocketReads. */
async function serve(onRead: (bytes: Buffer, reads: SocketReads) => void) {
  const accepted: net.Socket[] = [];
  const server = net.createServer({ pauseOnConnect: true }, (s) => {
    const reads: SocketReads = new SocketReads((bytes) => onRead(bytes, reads));
    accepted.push(readAcceptedInto(s, reads.onread));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  await once(client, 'connect');
  await waitFor('accepted', () => accepted.length === 1);
  return { server, client, socket: accepted[0] };
}

const open: { server: net.Server; client: net.Socket }[] = [];
afterEach(() => {
  for (const o of open.splice(0)) {
    o.client.destroy();
    o.server.close();
  }
});

describe('SocketReads', () => {
  it('the tests run with poisoned read buffers: a view kept past the call reads garbage', async () => {
    expect(process.env.IDEMPO_TEST_ONLY_POISON_READS).toBe('1'); // vitest.config.ts
    const views: Buffer[] = [];
    const copies: Buffer[] = [];
    const s = await serve((bytes) => {
      views.push(bytes); // the mistake the poison exists to show
      copies.push(Buffer.from(bytes));
    });
    open.push(s);
    s.client.write('hello');
    await waitFor('read', () => copies.length > 0);
    expect(Buffer.concat(copies).toString()).toBe('hello');
    expect(views[0].every((b) => b === 0xa5)).toBe(true);
  });

  it('keep(): bytes a write still holds are not overwritten by the next read', async () => {
    const kept: Buffer[] = [];
    let n = 0;
    const s = await serve((bytes, reads) => {
      if (n++ === 0) {
        kept.push(bytes);
        reads.keep();
      }
    });
    open.push(s);
    s.client.write('first');
    await waitFor('first read', () => n === 1);
    s.client.write('second');
    await waitFor('second read', () => n === 2);
    expect(kept[0].toString()).toBe('first');
  });

  it('an accepted socket read this way resumes after a pause, and closes for its server', async () => {
    let got = '';
    const s = await serve((bytes) => void (got += bytes.toString()));
    open.push(s);
    s.socket.pause();
    s.client.write('abc');
    s.socket.resume();
    await waitFor('resumed read', () => got === 'abc');
    s.client.end();
    await once(s.socket, 'close');
    // The server counted the accepted connection until then: its close completes only now.
    await new Promise<void>((resolve, reject) => s.server.close((err) => (err ? reject(err) : resolve())));
  });
});
