'use strict';

// Interop peer for wsforge's tests, on Node's ws library: the same command
// line, commands and stdout events as peer.py (see there).
//
//     node peer.js server CONFIG
//     node peer.js client CONFIG URL
//
// CONFIG's "deflate" object maps RFC 7692 parameter names to ws's
// perMessageDeflate options; everything else is ws's default.

const WebSocket = require('ws');

function emit(event, fields) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
}

const optionNames = {
  server_no_context_takeover: 'serverNoContextTakeover',
  client_no_context_takeover: 'clientNoContextTakeover',
  server_max_window_bits: 'serverMaxWindowBits',
  client_max_window_bits: 'clientMaxWindowBits'
};

function perMessageDeflate(config) {
  const deflate = config.deflate;
  if (deflate === null || deflate === undefined) return false;
  // ws servers leave permessage-deflate off unless asked; its clients
  // offer it by default. true is the default configuration for both.
  if (deflate === 'default') return true;
  const opts = {};
  for (const [name, value] of Object.entries(deflate)) {
    if (!(name in optionNames)) throw new Error('unknown parameter ' + name);
    opts[optionNames[name]] = value;
  }
  return opts;
}

function split(data, n) {
  const parts = [];
  for (let i = 0; i < n; i++) {
    parts.push(
      data.subarray(
        Math.floor((i * data.length) / n),
        Math.floor(((i + 1) * data.length) / n)
      )
    );
  }
  return parts;
}

const BANG = 0x21;

function session(ws, offer, response) {
  const pmd = ws._extensions['permessage-deflate'];
  emit('open', {
    offer: offer || '',
    response: response || '',
    params: pmd ? [{ name: 'permessage-deflate', ...pmd.params }] : []
  });
  let frag = 0;
  ws.on('message', (data, isBinary) => {
    if (!isBinary && data.length > 0 && data[0] === BANG) {
      const msg = data.toString();
      const sp = msg.indexOf(' ');
      const name = sp < 0 ? msg.slice(1) : msg.slice(1, sp);
      const arg = sp < 0 ? '' : msg.slice(sp + 1);
      if (name === 'frag') {
        frag = parseInt(arg, 10);
      } else if (name === 'ping') {
        const onPong = (payload) => {
          if (payload.toString() !== arg) return;
          ws.off('pong', onPong);
          ws.send('!pong ' + arg);
        };
        ws.on('pong', onPong);
        ws.ping(arg);
      } else if (name === 'close') {
        const sp2 = arg.indexOf(' ');
        ws.close(
          parseInt(sp2 < 0 ? arg : arg.slice(0, sp2), 10),
          sp2 < 0 ? '' : arg.slice(sp2 + 1)
        );
      } else {
        emit('error', { error: 'unknown command ' + JSON.stringify(msg) });
      }
      return;
    }
    if (frag > 1 && data.length >= frag) {
      const parts = split(data, frag);
      parts.forEach((part, i) =>
        ws.send(part, { binary: isBinary, fin: i === parts.length - 1 })
      );
      frag = 0;
    } else {
      ws.send(data, { binary: isBinary });
    }
  });
  ws.on('error', (err) => emit('error', { error: String(err) }));
}

function main() {
  const [mode, configJSON, url] = process.argv.slice(2);
  const config = JSON.parse(configJSON);
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();

  if (mode === 'server') {
    const responses = new WeakMap();
    const wss = new WebSocket.WebSocketServer({
      host: '127.0.0.1',
      port: 0,
      perMessageDeflate: perMessageDeflate(config)
    });
    wss.on('headers', (headers, req) => {
      const ext = headers.find((h) =>
        h.toLowerCase().startsWith('sec-websocket-extensions:')
      );
      responses.set(req, ext ? ext.slice(ext.indexOf(':') + 1).trim() : '');
    });
    wss.on('listening', () => {
      emit('listening', {
        port: wss.address().port,
        version: require('ws/package.json').version
      });
    });
    wss.on('connection', (ws, req) => {
      session(ws, req.headers['sec-websocket-extensions'], responses.get(req));
      ws.on('close', (code, reason) =>
        emit('closed', { code, reason: reason.toString() })
      );
    });
    return;
  }

  const ws = new WebSocket(url, {
    perMessageDeflate: perMessageDeflate(config)
  });
  let offer = '';
  let response = '';
  let opened = false;
  ws.on('upgrade', (res) => {
    // ws keeps the request (private) until just after this event.
    offer = (ws._req && ws._req.getHeader('sec-websocket-extensions')) || '';
    response = res.headers['sec-websocket-extensions'] || '';
  });
  ws.on('open', () => {
    opened = true;
    session(ws, offer, response);
  });
  ws.on('unexpected-response', (req, res) => {
    emit('error', { error: 'connect: unexpected response ' + res.statusCode });
    process.exit(1);
  });
  ws.on('close', (code, reason) => {
    emit('closed', { code, reason: reason.toString() });
    process.exit(0);
  });
  ws.on('error', (err) => {
    if (!opened) emit('error', { error: 'connect: ' + String(err) });
  });
}

main();
