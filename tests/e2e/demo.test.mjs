/*
 * End-to-end: two real browsers (Debian's headless Chromium, driven by
 * playwright-core) load the demo page served by the server at /demo/, which
 * uses the JavaScript SDK from /demo/sdk/.  They register as two clients,
 * one creates the room, the other joins, they exchange offer/answer/ICE
 * through SIGNAL, and a WebRTC data channel carries messages both ways.
 * The second case reloads one page mid-session: the other side must see
 * participant_left, and the reloaded page must be able to rejoin.
 *
 * Bounded: every wait has a timeout; the server and browser are stopped in
 * t.after even when a step fails.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const { chromium } = require('playwright-core');
const { startServer, ROOT } = require('../integration/lib/harness.js');

const CHROMIUM = process.env.SM_CHROMIUM || '/usr/bin/chromium';
const STEP = Number(process.env.SM_E2E_STEP_MS || 15000);
/* Flags for a closed, headless machine (no background services, no GPU). */
const ARGS = [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
];

async function setup(t)
{
    const srv = await startServer(t, {
        env: {
            SIGNAL_MANAGER_STORE_BACKEND: 'memory',
            SIGNAL_MANAGER_SERVER_DEMO_DIR: path.join(ROOT, 'demo'),
            SIGNAL_MANAGER_SERVER_SDK_DIR: path.join(ROOT, 'lib/js'),
        },
    });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
    t.after(() => browser.close());
    const ctx = await browser.newContext({ permissions: ['camera', 'microphone'] });
    const pages = [await ctx.newPage(), await ctx.newPage()];
    const errors = [];
    pages.forEach((p, i) => p.on('pageerror', (e) => errors.push(`page ${i + 1}: ${e.message}`)));
    const base = `http://127.0.0.1:${srv.port}/demo/`;
    return { srv, pages, errors, base };
}

async function open(page, base, identity, room)
{
    await page.goto(`${base}?room=${room}&identity=${identity}&media=0`);
    await page.waitForFunction(() => window.demo && window.demo.state === 'idle', null,
                               { timeout: STEP });
}

async function connected(page)
{
    await page.waitForFunction(() => {
        const i = window.demo.info();
        return window.demo.state === 'connected' && i.peers.length === 1 &&
               i.peers[0].dataChannel === 'open';
    }, null, { timeout: STEP });
}

async function exchange(a, b, textA, textB)
{
    await a.evaluate((x) => window.demo.send(x), textA);
    await b.waitForFunction((x) => window.demo.lastMessage?.text === x, textA, { timeout: STEP });
    await b.evaluate((x) => window.demo.send(x), textB);
    await a.waitForFunction((x) => window.demo.lastMessage?.text === x, textB, { timeout: STEP });
}

test('two browsers: room, offer/answer/ICE via SIGNAL, data channel both ways',
     { timeout: 60000 }, async (t) => {
    const { pages: [p1, p2], errors, base } = await setup(t);
    await open(p1, base, 1, 'e2e-room');
    await open(p2, base, 2, 'e2e-room');
    await p1.evaluate(() => window.demo.join());          /* creates the room */
    await p1.waitForFunction(() => window.demo.state === 'waiting', null, { timeout: STEP });
    await p2.evaluate(() => window.demo.join());          /* joins, sends the offer */
    await connected(p1);
    await connected(p2);
    await exchange(p1, p2, 'hello from 1', 'hello from 2');
    const i1 = await p1.evaluate(() => window.demo.info());
    assert.equal(i1.peers[0].id, 'test_client_2');
    assert.equal(i1.peers[0].connectionState, 'connected');
    assert.deepEqual(errors, []);
});

test('a page reloads mid-session: the peer sees participant_left, the page rejoins',
     { timeout: 90000 }, async (t) => {
    const { pages: [p1, p2], errors, base } = await setup(t);
    await open(p1, base, 1, 'e2e-reload');
    await open(p2, base, 2, 'e2e-reload');
    await p1.evaluate(() => window.demo.join());
    await p1.waitForFunction(() => window.demo.state === 'waiting', null, { timeout: STEP });
    await p2.evaluate(() => window.demo.join());
    await connected(p1);
    await connected(p2);
    /* Record the room events page 1's SDK receives from now on. */
    await p1.evaluate(() => {
        window.__events = [];
        window.demo.client.on('roomEvent', (e) => window.__events.push(e));
    });
    await p2.reload();
    await p1.waitForFunction(() => window.__events.some(
        (e) => e.event === 'participant_left' && e.client_id === 'test_client_2'),
        null, { timeout: STEP });
    await p1.waitForFunction(() => window.demo.info().peers.length === 0, null, { timeout: STEP });
    /* The reloaded page is a new client session: it joins the room again. */
    await p2.waitForFunction(() => window.demo && window.demo.state === 'idle', null,
                             { timeout: STEP });
    await p2.evaluate(() => window.demo.join());
    await connected(p1);
    await connected(p2);
    await p1.waitForFunction(() => window.__events.some(
        (e) => e.event === 'participant_joined' && e.client_id === 'test_client_2'),
        null, { timeout: STEP });
    await exchange(p1, p2, 'after reload 1', 'after reload 2');
    assert.deepEqual(errors, []);
});
