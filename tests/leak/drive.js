/*
 * Load for the leak check (scripts/leakcheck.sh): N sessions against a server,
 * C at a time.  Each session does CONNECT, REGISTER, a room create or join, a
 * SIGNAL, PING, then ends one of three ways (DISCONNECT, close frame, abrupt
 * drop) so that every cleanup path runs.  Exits non-zero on any protocol
 * error so that a broken server cannot pass the leak check by doing nothing.
 *
 *   node tests/leak/drive.js ws://127.0.0.1:PORT/ SESSIONS CONCURRENCY
 */
'use strict';
const C = require('../integration/lib/client.js');
const { T } = C;

const [url, total = '1000', conc = '50'] = process.argv.slice(2);
const N = Number(total), K = Number(conc);
const v = { version: '1.0.0' };

async function one(i, lane)
{
    const id = `leak_${i}`;
    const c = await C.connectClient(url, id, 'leak-token');
    const reg = await c.request(T.REGISTER, { ...v, client_id: id, auth_token: 'leak-token' });
    if (reg.type !== T.REGISTER_ACK) throw new Error(`REGISTER ${C.describe(reg)}`);
    /* One room per lane: sessions of a lane run one after another, so a room
     * is never half-created when the next one wants it; a member that dropped
     * abruptly is still in it (resume window), so later sessions join. */
    const room = `room_${lane}`;
    /* Create, or join when it exists; the room may close in between (its
     * last member left): then create again. */
    let r;
    for (let tries = 0; tries < 10; tries++) {
        r = await c.request(T.ROOM_CREATE, { ...v, client_id: id, room_id: room });
        if (r.type === T.ROOM_CREATE_ACK) break;
        r = await c.request(T.ROOM_JOIN, { ...v, client_id: id, room_id: room });
        if (r.type === T.ROOM_JOIN_ACK) break;
    }
    if (r.type !== T.ROOM_CREATE_ACK && r.type !== T.ROOM_JOIN_ACK)
        throw new Error(`room ${C.describe(r)}`);
    c.send(T.SIGNAL, { target_client_id: id, type: 'self', data: { i } });
    const p = await c.request(T.PING, { timestamp: i });
    if (p.type !== T.PING_ACK) throw new Error(`PING ${C.describe(p)}`);
    switch (i % 3) {
    case 0: c.send(T.DISCONNECT, {}); await c.waitClose(); break;
    case 1: c.close(1000); await c.waitClose(); break;
    default: c.terminate(); break;
    }
}

(async () => {
    let next = 0, done = 0;
    async function lane(_, l) {
        while (next < N) {
            const i = next++;
            await one(i, l);
            done++;
        }
    }
    await Promise.all(Array.from({ length: K }, lane));
    console.log(JSON.stringify({ sessions: done }));
    process.exit(0);
})().catch((e) => { console.error('leak drive failed:', e.message); process.exit(1); });
