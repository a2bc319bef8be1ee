// h2open.js: times opening n WebSockets to one server two ways, from one
// Node process: as n extended CONNECT streams on one HTTP/2 session (RFC
// 8441), and as n HTTP/1.1 upgrades, each on a connection of its own.
//
//   node h2open.js <origin> <path> <n> <runs>
//
// origin is https://host:port (TLS; the certificate is not checked) or
// http://host:port (h2c and plain HTTP/1.1). The server must accept both.
// Each run opens all n at once and waits for the last 200 or 101; the
// HTTP/2 time includes the session's own connection and handshake. Prints
// one JSON line: {"h2": [ms...], "h1": [ms...]}.
'use strict';
const http2 = require('http2');
const http = require('http');
const https = require('https');
const crypto = require('crypto');

const [origin, path, nArg, runsArg] = process.argv.slice(2);
const n = Number(nArg);
const runs = Number(runsArg);
const url = new URL(origin);
const tls = url.protocol === 'https:';

function openH2() {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const session = http2.connect(origin, { rejectUnauthorized: false });
    session.on('error', reject);
    const streams = [];
    let open = 0;
    session.on('remoteSettings', () => {
      if (streams.length > 0) return;
      for (let i = 0; i < n; i++) {
        const s = session.request({
          ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': url.protocol.slice(0, -1),
          ':authority': url.host, ':path': path, 'sec-websocket-version': '13',
        }, { endStream: false });
        streams.push(s);
        s.on('error', reject);
        s.on('response', (h) => {
          if (h[':status'] !== 200) return reject(new Error('status ' + h[':status']));
          if (++open === n) {
            const ms = Number(process.hrtime.bigint() - start) / 1e6;
            for (const st of streams) st.close();
            session.close(() => resolve(ms));
          }
        });
      }
    });
  });
}

function openH1() {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const mod = tls ? https : http;
    const agent = new mod.Agent({ keepAlive: false, maxSockets: Infinity });
    const socks = [];
    let open = 0;
    for (let i = 0; i < n; i++) {
      const req = mod.request({
        host: url.hostname, port: url.port, path, agent, rejectUnauthorized: false,
        headers: {
          Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
          'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64'),
        },
      });
      req.on('error', reject);
      req.on('response', (res) => reject(new Error('status ' + res.statusCode)));
      req.on('upgrade', (res, sock) => {
        socks.push(sock);
        if (++open === n) {
          const ms = Number(process.hrtime.bigint() - start) / 1e6;
          for (const s of socks) s.destroy();
          resolve(ms);
        }
      });
      req.end();
    }
  });
}

(async () => {
  const out = { h2: [], h1: [] };
  for (let r = 0; r < runs; r++) {
    out.h2.push(await openH2());
    out.h1.push(await openH1());
  }
  console.log(JSON.stringify(out));
})().catch((err) => {
  console.error('h2open:', err.message);
  process.exit(1);
});
