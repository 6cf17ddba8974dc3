'use strict';
/*
 * Helpers for the room, SIGNAL and resume tests (DECISIONS.md §3, §6).
 *
 *   keysEnv(n, extra)          env with api_keys for test_client_1..n (token test_token_i)
 *                              plus extra "id:token" pairs
 *   cid(i), tok(i)             "test_client_i", "test_token_i"
 *   await registered(srv, i)   connected + REGISTERed Client for test_client_i
 *   await createRoom(c, id, extra) / joinRoom / leaveRoom   reply frame (ACK or ERROR)
 *   await created(c, id, extra) / joined / left             the ACK (asserts it is one)
 *   await roomEvent(c, event, {room_id, client_id}, ms)     next matching ROOM_EVENT (consumed)
 *   eventsSeen(c, event, {room_id, client_id})              matching ROOM_EVENTs ever received
 *   binSignal(target, body) / parseBinSignal(buf)           BINARY SIGNAL payloads
 *   await sqliteRows(dbPath, sql)                           rows via the sqlite3 CLI, read-only
 *   await roundTrip(c)                                      PING -> PING_ACK (ordering barrier)
 */

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const { T, PROTOCOL_VERSION, describe: desc, DEFAULT_TIMEOUT } = require('./client');

const cid = (i) => `test_client_${i}`;
const tok = (i) => `test_token_${i}`;

function keysEnv(n, extra = [])
{
    const pairs = [...extra];
    for (let i = 1; i <= n; i++) pairs.push(`${cid(i)}:${tok(i)}`);
    return { SIGNAL_MANAGER_AUTH_API_KEYS: pairs.join(',') };
}

/* Connected and registered client number i (or an explicit id/token). */
async function registered(srv, i, token)
{
    const id = typeof i === 'number' ? cid(i) : i;
    const c = await srv.connect(id, token || (typeof i === 'number' ? tok(i) : undefined));
    const f = await c.register();
    assert.equal(f.type, T.REGISTER_ACK, `REGISTER ${id}: ${desc(f)}`);
    return c;
}

function roomPayload(c, roomId, extra = {})
{
    const p = { version: PROTOCOL_VERSION, client_id: c.clientId, ...extra };
    if (roomId !== undefined && roomId !== null) p.room_id = roomId;
    return p;
}

const createRoom = (c, roomId, extra) => c.request(T.ROOM_CREATE, roomPayload(c, roomId, extra));
const joinRoom = (c, roomId, extra) => c.request(T.ROOM_JOIN, roomPayload(c, roomId, extra));
const leaveRoom = (c, roomId, extra) => c.request(T.ROOM_LEAVE, roomPayload(c, roomId, extra));

function expectType(f, type, what)
{
    assert.equal(f.type, type, `${what}: ${desc(f)}`);
    return f;
}

async function created(c, roomId, extra)
{
    return expectType(await createRoom(c, roomId, extra), T.ROOM_CREATE_ACK, `ROOM_CREATE ${roomId} by ${c.clientId}`);
}

async function joined(c, roomId, extra)
{
    return expectType(await joinRoom(c, roomId, extra), T.ROOM_JOIN_ACK, `ROOM_JOIN ${roomId} by ${c.clientId}`);
}

async function left(c, roomId, extra)
{
    return expectType(await leaveRoom(c, roomId, extra), T.ROOM_LEAVE_ACK, `ROOM_LEAVE ${roomId} by ${c.clientId}`);
}

function eventMatches(f, event, match)
{
    if (f.type !== T.ROOM_EVENT || !f.json || f.json.event !== event) return false;
    for (const [k, v] of Object.entries(match)) if (f.json[k] !== v) return false;
    return true;
}

function roomEvent(c, event, match = {}, timeoutMs = DEFAULT_TIMEOUT)
{
    return c.next((f) => eventMatches(f, event, match), timeoutMs,
        `ROOM_EVENT ${event} ${JSON.stringify(match)} at ${c.clientId}`);
}

function eventsSeen(c, event, match = {})
{
    return c.seen.filter((f) => eventMatches(f, event, match));
}

/* PING round trip: every frame the server queued to c before handling the PING
 * (on c's own worker) has arrived when this resolves. */
async function roundTrip(c)
{
    const f = await c.pingFrame();
    assert.equal(f.type, T.PING_ACK, desc(f));
    return f;
}

function binSignal(target, body = Buffer.alloc(0))
{
    const id = Buffer.from(target, 'latin1');
    return Buffer.concat([Buffer.from([id.length]), id, body]);
}

function parseBinSignal(buf)
{
    assert.ok(buf.length >= 1, 'BINARY SIGNAL payload is empty');
    const n = buf[0];
    assert.ok(buf.length >= 1 + n, `BINARY SIGNAL prefix says ${n} id bytes, payload has ${buf.length - 1}`);
    return { clientId: buf.subarray(1, 1 + n).toString('latin1'), body: buf.subarray(1 + n) };
}

/* Run one query with the sqlite3 CLI on a read-only connection; resolves rows (objects). */
function sqliteRows(dbPath, sql, timeoutMs = DEFAULT_TIMEOUT)
{
    return new Promise((resolve, reject) => {
        const p = spawn('sqlite3', ['-readonly', '-json', '-cmd', '.timeout 2000', dbPath, sql],
            { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        const timer = setTimeout(() => {
            p.kill('SIGKILL');
            reject(new Error(`sqlite3 ${JSON.stringify(sql)}: no exit within ${timeoutMs} ms`));
        }, timeoutMs);
        p.stdout.setEncoding('utf8');
        p.stderr.setEncoding('utf8');
        p.stdout.on('data', (d) => { out += d; });
        p.stderr.on('data', (d) => { err += d; });
        p.on('error', (e) => {
            clearTimeout(timer);
            reject(new Error(`cannot run sqlite3: ${e.message}`));
        });
        p.on('exit', (code) => {
            clearTimeout(timer);
            if (code !== 0) {
                reject(new Error(`sqlite3 ${JSON.stringify(sql)} exited ${code}: ${err.trim()}`));
                return;
            }
            try {
                resolve(out.trim() === '' ? [] : JSON.parse(out));
            } catch (e) {
                reject(new Error(`sqlite3 output is not JSON: ${JSON.stringify(out)}`));
            }
        });
    });
}

module.exports = {
    cid, tok, keysEnv, registered, roomPayload, createRoom, joinRoom, leaveRoom,
    created, joined, left, roomEvent, eventsSeen, eventMatches, roundTrip,
    binSignal, parseBinSignal, sqliteRows,
};
