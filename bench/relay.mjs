// The reference of the throughput benchmark: the least a Node process must do to move bytes
// between two host endpoints, a unix-socket relay (listen on IN, forward to and from OUT).
import net from 'node:net';
const [inPath, outPath] = process.argv.slice(2);
const out = net.createServer((b) => {
  const a = net.createServer((s) => { s.pipe(b); b.pipe(s); });
  a.listen(inPath, () => process.stdout.write('relay ready\n'));
});
out.listen(outPath, () => process.stdout.write('out ready\n'));
