// shs-boxstream.js: box-stream through an independent implementation
// (npm's pull-box-stream, the one Scuttlebutt uses), for interop tests.
//
//   node shs-boxstream.js enc KEYHEX NONCEHEX <plain >cipher
//   node shs-boxstream.js dec KEYHEX NONCEHEX <cipher >plain
//
// enc encrypts all of stdin as one piece (split into 4096-byte bodies) and
// ends with the goodbye; dec exits 1 with a message on any error.
'use strict';
const pull = require('pull-stream');
const boxes = require('pull-box-stream');

const [mode, keyHex, nonceHex] = process.argv.slice(2);
const key = Buffer.from(keyHex, 'hex');
const nonce = Buffer.from(nonceHex, 'hex');

const chunks = [];
process.stdin.on('data', c => chunks.push(c));
process.stdin.on('end', () => {
  const input = Buffer.concat(chunks);
  const through = mode === 'enc'
    ? boxes.createBoxStream(key, nonce)
    : boxes.createUnboxStream(key, nonce);
  // feed the decoder in odd-sized pieces, as a socket would
  const pieces = [];
  for (let i = 0; i < input.length; i += 777) pieces.push(input.slice(i, i + 777));
  pull(
    pull.values(mode === 'enc' ? [input] : pieces),
    through,
    pull.collect((err, out) => {
      if (err) {
        process.stderr.write('shs-boxstream.js: ' + err.message + '\n');
        process.exit(1);
      }
      process.stdout.write(Buffer.concat(out));
    })
  );
});
