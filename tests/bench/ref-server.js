#!/usr/bin/env node
// Reference peer for `make bench`: a small Node `ws` server speaking the same
// Signal Manager protocol (docs/protocol.md) for the scenarios it can serve:
// CONNECT -> CONNECT_ACK, PING -> PING_ACK, REGISTER -> REGISTER_ACK and
// SIGNAL relay (JSON and BINARY), DISCONNECT.  It is a yardstick, written the
// way a competent Node developer would write it (no validation beyond what
// the replies need), so the ratio signal-bench prints is "our server vs a
// plain Node ws server doing the same job".
//
// Usage: node tests/bench/ref-server.js [--host H] [--port N]
//   env BENCH_JWT_SECRET   verify CONNECT/REGISTER auth_token as an HS256 JWT
//                          (sub = client_id, exp in the future), as the real
//                          server does with auth.auth_method=jwt; without it
//                          the two default test credentials are accepted.
// Prints one JSON line {"msg":"listening","port":N} on stdout when ready.
// SIGTERM/SIGINT: close everything and exit 0.
'use strict';

const crypto = require('node:crypto');
const { WebSocketServer } = require('ws');

const HEADER = 21;
const T = {
  CONNECT: 0x01, CONNECT_ACK: 0x02, DISCONNECT: 0x03, PING: 0x04, PING_ACK: 0x05,
  REGISTER: 0x20, REGISTER_ACK: 0x21, SIGNAL: 0x40, ERROR: 0xff,
};
const JSON_PT = 0x02;
const BINARY_PT = 0x01;
const ZERO_UUID = Buffer.alloc(16); // the uuid of an answer to an unreadable frame

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

const host = arg('--host', '127.0.0.1');
const port = Number(arg('--port', '0'));
const secret = process.env.BENCH_JWT_SECRET || '';
const apiKeys = new Map([['test_client_1', 'test_token_1'], ['test_client_2', 'test_token_2']]);

function frame(type, uuid, payloadType, body) {
  const f = Buffer.allocUnsafe(HEADER + body.length);
  f[0] = 0xaa;
  f[1] = type;
  uuid.copy(f, 2, 0, 16);
  f[18] = payloadType;
  f.writeUInt16BE(body.length, 19);
  body.copy(f, HEADER);
  return f;
}

function sendJson(ws, type, uuid, obj) {
  ws.send(frame(type, uuid, JSON_PT, Buffer.from(JSON.stringify(obj))), { binary: true });
}

function sendError(ws, uuid, code, message) {
  sendJson(ws, T.ERROR, uuid, {
    error_code: code, error_message: message, details: { timestamp: Date.now() },
  });
}

function b64urlDecode(s) {
  return Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

// HS256 JWT check: signature, sub, exp.  Enough to cost what a real check costs.
function jwtValid(token, clientId) {
  const parts = typeof token === 'string' ? token.split('.') : [];
  if (parts.length !== 3) return false;
  const mac = crypto.createHmac('sha256', secret).update(`${parts[0]}.${parts[1]}`).digest();
  const sig = b64urlDecode(parts[2]);
  if (sig.length !== mac.length || !crypto.timingSafeEqual(sig, mac)) return false;
  let header, claims;
  try {
    header = JSON.parse(b64urlDecode(parts[0]).toString('utf8'));
    claims = JSON.parse(b64urlDecode(parts[1]).toString('utf8'));
  } catch {
    return false;
  }
  return header.alg === 'HS256' && claims.sub === clientId &&
    typeof claims.exp === 'number' && claims.exp * 1000 > Date.now();
}

function authValid(clientId, token) {
  if (secret) return jwtValid(token, clientId);
  return apiKeys.get(clientId) === token;
}

const registry = new Map(); // client_id -> ws

function onMessage(ws, st, data, isBinary) {
  if (!isBinary) { ws.close(1003, 'text frames are not supported'); return; }
  const buf = data;
  if (buf.length < HEADER || buf[0] !== 0xaa) { sendError(ws, ZERO_UUID, 400, 'bad frame'); return; }
  const type = buf[1];
  const uuid = buf.subarray(2, 18);
  const pt = buf[18];
  const len = buf.readUInt16BE(19);
  if (len !== buf.length - HEADER) { sendError(ws, uuid, 400, 'length mismatch'); return; }
  const payload = buf.subarray(HEADER);
  let msg = null;
  if (pt === JSON_PT) {
    try {
      msg = JSON.parse(payload.toString('utf8'));
    } catch {
      sendError(ws, uuid, 400, 'payload: invalid JSON');
      return;
    }
    if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) {
      sendError(ws, uuid, 400, 'payload: not an object');
      return;
    }
  }
  if (type !== T.CONNECT && type !== T.DISCONNECT && !st.clientId) {
    sendError(ws, uuid, 401, 'not authenticated: send CONNECT first');
    return;
  }
  switch (type) {
    case T.CONNECT: {
      if (!msg || typeof msg.client_id !== 'string' || typeof msg.auth_token !== 'string') {
        sendError(ws, uuid, 400, 'client_id: required field missing');
        return;
      }
      if (!authValid(msg.client_id, msg.auth_token)) {
        sendError(ws, uuid, 401, 'invalid credentials');
        return;
      }
      if (st.clientId) { sendError(ws, uuid, 409, 'already connected'); return; }
      st.clientId = msg.client_id;
      st.sessionId = crypto.randomUUID();
      sendJson(ws, T.CONNECT_ACK, uuid, {
        status: 200, message: 'Connection established', session_id: st.sessionId,
        server_version: '1.0.0', heartbeat_interval: 30,
        capabilities: ['websocket', 'heartbeat', 'webrtc'],
      });
      return;
    }
    case T.PING:
      if (!msg || typeof msg.timestamp !== 'number') {
        sendError(ws, uuid, 400, 'timestamp: required field missing');
        return;
      }
      sendJson(ws, T.PING_ACK, uuid, { timestamp: msg.timestamp, server_time: Date.now() });
      return;
    case T.REGISTER: {
      if (!msg || msg.client_id !== st.clientId) { sendError(ws, uuid, 403, 'client_id mismatch'); return; }
      if (!authValid(msg.client_id, msg.auth_token)) { sendError(ws, uuid, 401, 'invalid credentials'); return; }
      const holder = registry.get(st.clientId);
      if (st.registered || (holder && holder !== ws)) {
        sendError(ws, uuid, 409, 'client_id is already registered');
        return;
      }
      registry.set(st.clientId, ws);
      st.registered = true;
      sendJson(ws, T.REGISTER_ACK, uuid, {
        version: '1.0.0', status: 200, message: 'Registration successful',
        client_id: st.clientId, session_id: st.sessionId,
      });
      return;
    }
    case T.SIGNAL: {
      if (!st.registered) { sendError(ws, uuid, 401, 'client not registered'); return; }
      let target, out;
      if (pt === JSON_PT) {
        target = msg.target_client_id;
        msg.from_client_id = st.clientId;
        out = () => frame(T.SIGNAL, crypto.randomBytes(16), JSON_PT, Buffer.from(JSON.stringify(msg)));
      } else if (pt === BINARY_PT && payload.length > 0 && payload.length >= 1 + payload[0]) {
        const n = payload[0];
        target = payload.toString('latin1', 1, 1 + n);
        out = () => {
          const from = Buffer.from(st.clientId, 'latin1');
          const body = Buffer.allocUnsafe(1 + from.length + payload.length - 1 - n);
          body[0] = from.length;
          from.copy(body, 1);
          payload.copy(body, 1 + from.length, 1 + n);
          return frame(T.SIGNAL, crypto.randomBytes(16), BINARY_PT, body);
        };
      } else {
        sendError(ws, uuid, 400, 'bad SIGNAL payload');
        return;
      }
      const to = registry.get(target);
      if (!to) { sendError(ws, uuid, 404, 'target client not found'); return; }
      to.send(out(), { binary: true });
      return;
    }
    case T.DISCONNECT:
      ws.close(1000);
      return;
    default:
      sendError(ws, uuid, 400, 'message type not supported by the reference peer');
  }
}

const wss = new WebSocketServer({ host, port, perMessageDeflate: false, maxPayload: 1 << 20 });
wss.on('connection', (ws) => {
  const st = { clientId: null, sessionId: null, registered: false };
  ws.on('message', (data, isBinary) => onMessage(ws, st, data, isBinary));
  ws.on('close', () => {
    if (st.registered && registry.get(st.clientId) === ws) registry.delete(st.clientId);
  });
  ws.on('error', () => {});
});
wss.on('listening', () => {
  process.stdout.write(`${JSON.stringify({ msg: 'listening', port: wss.address().port })}\n`);
});

function stop() {
  for (const ws of wss.clients) ws.terminate();
  wss.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
