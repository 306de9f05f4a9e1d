// The floor of the benchmark: a plain Node.js TCP byte relay in its own process (no Kafka
// parsing), so its CPU and memory can be read from /proc like the sidecar's.
//   node dist/bench/relay.js LISTEN_PORT TARGET_HOST:TARGET_PORT
// Prints "ready" once listening. Each accepted connection is piped to one new upstream
// connection; stream.pipe gives the usual backpressure in both directions.
import net from 'node:net';

const [listenArg, targetArg] = process.argv.slice(2);
const m = /^(.+):(\d+)$/.exec(targetArg ?? '');
if (!listenArg || !m) {
  console.error('usage: relay.js LISTEN_PORT TARGET_HOST:TARGET_PORT');
  process.exit(2);
}
const target = { host: m[1], port: Number(m[2]) };

const server = net.createServer({ noDelay: true }, (client) => {
  const upstream = net.connect({ ...target, noDelay: true });
  client.pipe(upstream).on('error', () => client.destroy());
  upstream.pipe(client).on('error', () => upstream.destroy());
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
  client.on('close', () => upstream.destroy());
  upstream.on('close', () => client.destroy());
});
server.listen({ host: '127.0.0.1', port: Number(listenArg) }, () => console.log('ready'));
process.on('SIGTERM', () => process.exit(0));
