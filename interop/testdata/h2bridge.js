// h2bridge.js: a TCP-to-HTTP/2 bridge for wsforge's RFC 8441 tests, so
// that tests written against a byte stream can run over an HTTP/2 stream.
//
//   node h2bridge.js <origin>
//
// origin is https://host:port (TLS, ALPN h2, certificate not checked) or
// http://host:port (h2c, prior knowledge). The bridge opens one HTTP/2
// session to it, listens on 127.0.0.1 and prints "port N" once ready.
//
// Each TCP connection starts with a request head in HTTP/1.1's shape:
//
//   CONNECT /path HTTP/1.1\r\nName: value\r\n...\r\n\r\n
//
// which becomes an extended CONNECT (:protocol websocket, unless a
// ":protocol: x" line says otherwise) on the shared session. The answer
// comes back as "HTTP/1.1 <status> -\r\n<fields>\r\n\r\n", then bytes are
// relayed both ways: the TCP FIN and END_STREAM map to each other, and a
// stream reset becomes a TCP reset (RFC 8441 section 4).
'use strict';
const http2 = require('http2');
const net = require('net');

const origin = process.argv[2];
// Windows far above the defaults (64 KiB), so that the tests' large
// messages do not wait on a WINDOW_UPDATE every 64 KiB.
const session = http2.connect(origin, {
  rejectUnauthorized: false,
  settings: { initialWindowSize: 16 << 20 },
});
session.on('connect', () => session.setLocalWindowSize(64 << 20));
session.on('error', (err) => {
  console.error('h2bridge: session error:', err.message);
  process.exit(1);
});
session.on('close', () => process.exit(0));

const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (sock) => {
  let head = Buffer.alloc(0);
  const onHead = (chunk) => {
    head = Buffer.concat([head, chunk]);
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) return;
    sock.removeListener('data', onHead);
    sock.pause();
    open(sock, head.subarray(0, end).toString('latin1'), head.subarray(end + 4));
  };
  sock.on('data', onHead);
  sock.on('error', () => {});
});

function open(sock, head, rest) {
  const lines = head.split('\r\n');
  const path = lines[0].split(' ')[1];
  const url = new URL(origin);
  const headers = {
    ':method': 'CONNECT',
    ':protocol': 'websocket',
    ':scheme': url.protocol.replace(':', ''),
    ':authority': url.host,
    ':path': path,
  };
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':', 1);
    const name = line.slice(0, i).trim().toLowerCase();
    const value = line.slice(i + 1).trim();
    if (name.startsWith(':') || !(name in headers)) {
      headers[name] = value;
    } else {
      headers[name] = [].concat(headers[name], value);
    }
  }
  let stream;
  try {
    stream = session.request(headers, { endStream: false });
  } catch (err) {
    sock.end(`HTTP/1.1 599 -\r\nx-bridge-error: ${err.code || err.message}\r\n\r\n`);
    return;
  }
  stream.on('response', (h) => {
    let out = `HTTP/1.1 ${h[':status']} -\r\n`;
    for (const [k, v] of Object.entries(h)) {
      if (k.startsWith(':')) continue;
      for (const one of [].concat(v)) out += `${k}: ${one}\r\n`;
    }
    sock.write(out + '\r\n');
    stream.pipe(sock);
  });
  stream.on('close', () => {
    if (stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR && !sock.destroyed) {
      sock.resetAndDestroy();
    }
  });
  stream.on('error', () => {});
  sock.on('error', () => stream.close(http2.constants.NGHTTP2_CANCEL));
  if (rest.length > 0) stream.write(rest);
  sock.pipe(stream);
  sock.resume();
}

server.listen(0, '127.0.0.1', () => {
  console.log('port ' + server.address().port);
});
