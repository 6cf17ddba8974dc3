'use strict';
/*
 * signal-bench (src/bench/, issue 6) against the real server: every scenario
 * runs briefly with a handful of clients and must finish with a JSON result,
 * no errors and some operations; bad options and a wrong secret fail with a
 * clear message.  The figures themselves are make bench's business (no
 * timing is asserted here).
 */

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const path = require('node:path');
const fs = require('node:fs');
const { execFile } = require('node:child_process');
const { startServer, TEST_TIMEOUT } = require('./lib/harness');

const opts = { timeout: TEST_TIMEOUT };
const ROOT = path.resolve(__dirname, '..', '..');
const SM_BIN = path.resolve(ROOT, process.env.SM_BIN || 'build/signal-manager');
/* The bench is built next to the server (build/ or build/<variant>/). */
const BENCH_BIN = process.env.SM_BENCH_BIN || path.join(path.dirname(SM_BIN), 'signal-bench');
const SECRET = `it-bench-secret-${crypto.randomBytes(16).toString('hex')}`;

function bench(args, env = {})
{
    return new Promise((resolve) => {
        execFile(BENCH_BIN, args, {
            timeout: 30000,
            env: { PATH: process.env.PATH, ...env },
        }, (err, stdout, stderr) => {
            resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
        });
    });
}

function lastJson(stdout)
{
    const lines = stdout.trim().split('\n');
    return JSON.parse(lines[lines.length - 1]);
}

describe('signal-bench against the server', () => {
    let srv;
    before(async () => {
        assert.ok(fs.existsSync(BENCH_BIN), `${BENCH_BIN} not built (make)`);
        srv = await startServer(null, {
            env: {
                SIGNAL_MANAGER_STORE_BACKEND: 'memory',
                SIGNAL_MANAGER_AUTH_AUTH_METHOD: 'jwt',
                SIGNAL_MANAGER_AUTH_TOKEN_SECRET: SECRET,
                SIGNAL_MANAGER_LIMITS_CONNECT_RATE: '0',
                SIGNAL_MANAGER_LIMITS_MESSAGE_RATE: '0',
            },
        });
    });
    after(async () => {
        if (srv) await srv.stop({ expectCode: 0 });
    });

    const common = () => ['-q', '--port', String(srv.port), '-d', '0.3', '--warmup', '0.1',
        '--setup-timeout', '20', '--id-prefix', `it${crypto.randomBytes(3).toString('hex')}`];
    const cases = [
        ['rtt', ['-c', '4', '-P', '2', 'rtt'], 'rt/s'],
        ['churn', ['-c', '2', 'churn'], 'handshakes/s'],
        ['idle (with the server pid: RSS per connection)', ['-c', '20', 'idle'], 'conns/s'],
        ['route, closed loop, JSON', ['-c', '4', '-P', '2', 'route'], 'msgs/s'],
        ['route, closed loop, BINARY', ['-c', '4', '-P', '2', '--binary', 'route'], 'msgs/s'],
        ['route at an offered rate', ['-c', '4', '--rate', '500', '--tick-us', '200', 'route'], 'msgs/s'],
        ['fanout', ['-c', '8', '--room-size', '4', 'fanout'], 'msgs/s'],
    ];
    for (const [name, args, unit] of cases) {
        it(`${name}: a result with operations and no errors`, opts, async () => {
            const extra = args.includes('idle') ? ['--server-pid', String(srv.pid)] : [];
            const r = await bench([...common(), ...extra, ...args], { SIGNAL_BENCH_JWT_SECRET: SECRET });
            assert.equal(r.code, 0, `exit ${r.code}\nstderr:\n${r.stderr}`);
            const j = lastJson(r.stdout);
            assert.equal(j.scenario, args[args.length - 1]);
            assert.equal(j.unit, unit);
            assert.equal(j.errors, 0, `errors: ${JSON.stringify(j.error_detail)}`);
            assert.equal(typeof j.stop_404, 'number');
            assert.ok(j.ops > 0, `no operations: ${r.stdout}`);
            if (args[args.length - 1] !== 'churn')
                assert.equal(j.clients_ready, Number(args[args.indexOf('-c') + 1]));
            if (args.includes('--rate')) {
                assert.equal(j.params.rate, 500);
                assert.equal(j.params.tick_us, 200);
            }
            if (extra.length) {
                assert.equal(typeof j.rss_per_conn_kib, 'number', `no RSS figure: ${r.stdout}`);
                assert.ok(j.rss_after_kib >= j.rss_before_kib && j.rss_before_kib > 0, r.stdout);
            }
        });
    }

    it('a wrong JWT secret: no client gets through, exit 1 with the reason', opts, async () => {
        const r = await bench([...common(), '-c', '2', 'rtt'], { SIGNAL_BENCH_JWT_SECRET: `${SECRET}-wrong` });
        assert.equal(r.code, 1);
        assert.match(r.stderr, /no client completed its set-up/);
    });

    it('bad options exit 2 with a message', opts, async () => {
        let r = await bench(['--tick-us', '5', 'route']);
        assert.equal(r.code, 2);
        assert.match(r.stderr, /bad option value '5'/);
        r = await bench(['warp']);
        assert.equal(r.code, 2);
        assert.match(r.stderr, /unknown scenario 'warp'/);
        r = await bench(['--auth', 'jwt', 'rtt']);
        assert.equal(r.code, 2);
        assert.match(r.stderr, /--auth jwt needs --jwt-secret/);
        r = await bench(['rtt'], { SIGNAL_BENCH_JWT_SECRET: '' });
        assert.equal(r.code, 2);
        assert.match(r.stderr, /JWT secret .* is empty/);
    });
});
