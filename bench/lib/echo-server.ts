/**
 * A trivial TCP echo server (forked by wakeup.ts): what a Node process costs per event on this
 * machine when it does almost nothing with it. Prints its port to the parent over IPC.
 */
import net from 'net';

const srv = net.createServer((s) => s.on('data', (d) => s.write(d)));
srv.listen(0, '127.0.0.1', () => process.send?.((srv.address() as net.AddressInfo).port));
process.on('disconnect', () => process.exit(0));
