// shs-ssb-server.js: a server built on npm's secret-handshake (the
// implementation Scuttlebutt runs), for interop tests against our client.
//
//   node shs-ssb-server.js NETKEY SK PK
//
// Listens on 127.0.0.1 (a free port, printed first as "port N"), accepts one
// connection, reads every line until the client's goodbye, answers each
// line L with "echo: L", ends with its own goodbye, and prints one JSON
// line: {"remote": the client's pk, "received": [lines]}.
'use strict';
const net = require('net');
const pull = require('pull-stream');
const toPull = require('stream-to-pull-stream');
const shs = require('secret-handshake');

const [netHex, skHex, pkHex] = process.argv.slice(2);
const me = {publicKey: Buffer.from(pkHex, 'hex'), secretKey: Buffer.from(skHex, 'hex')};
const server = shs.createServer(me, (pk, cb) => cb(null, true), Buffer.from(netHex, 'hex'), 10000);

const fail = err => {
  process.stderr.write('shs-ssb-server.js: ' + (err.message || err) + '\n');
  process.exit(1);
};

const srv = net.createServer(sock => {
  srv.close();
  const duplex = toPull.duplex(sock);
  const handshake = server((err, stream) => {
    if (err) return fail(err);
    pull(stream.source, pull.collect((err2, bufs) => {
      if (err2) return fail(err2);
      const lines = Buffer.concat(bufs).toString().split('\n').slice(0, -1);
      pull(pull.values(lines.map(l => Buffer.from('echo: ' + l + '\n'))), stream.sink);
      console.log(JSON.stringify({remote: stream.remote.toString('hex'), received: lines}));
    }));
  });
  pull(duplex, handshake, duplex);
  sock.on('error', fail);
});
srv.listen(0, '127.0.0.1', () => console.log('port ' + srv.address().port));
