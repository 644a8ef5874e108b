// shs-ssb-client.js: a client built on npm's secret-handshake (the
// implementation Scuttlebutt runs), for interop tests against our server.
//
//   node shs-ssb-client.js PORT NETKEY SERVER_PK LINE...
//
// Connects to 127.0.0.1:PORT, does the handshake and box-stream with a
// random long-term key, sends each LINE (and a newline), ends its stream
// with the goodbye, reads everything the server sends until its goodbye and
// prints one JSON line: {"client": our pk, "remote": the server's pk,
// "received": [lines]}.  Exit 1 with a message on any error.
'use strict';
const net = require('net');
const pull = require('pull-stream');
const toPull = require('stream-to-pull-stream');
const shs = require('secret-handshake');
const sodium = require('chloride');

const [port, netHex, serverHex, ...lines] = process.argv.slice(2);
const me = sodium.crypto_sign_keypair();
const client = shs.createClient(me, Buffer.from(netHex, 'hex'), 10000);

const fail = err => {
  process.stderr.write('shs-ssb-client.js: ' + (err.message || err) + '\n');
  process.exit(1);
};

const sock = net.connect(Number(port), '127.0.0.1', () => {
  const duplex = toPull.duplex(sock);
  const handshake = client(Buffer.from(serverHex, 'hex'), (err, stream) => {
    if (err) return fail(err);
    pull(pull.values(lines.map(l => Buffer.from(l + '\n'))), stream.sink);
    pull(stream.source, pull.collect((err2, bufs) => {
      if (err2) return fail(err2);
      const text = Buffer.concat(bufs).toString();
      console.log(JSON.stringify({
        client: me.publicKey.toString('hex'),
        remote: stream.remote.toString('hex'),
        received: text.split('\n').filter((l, i, a) => i < a.length - 1)
      }));
      sock.end();
    }));
  });
  pull(duplex, handshake, duplex);
});
sock.on('error', fail);
