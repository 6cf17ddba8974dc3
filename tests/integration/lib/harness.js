'use strict';
/*
 * Start and stop the real server binary for one test.
 *
 *   const srv = await startServer(t, { env: {...}, args: [...], config: {server: {...}} });
 *   srv.port, srv.metricsPort, srv.url, srv.logs (parsed JSON lines), srv.proc
 *   await srv.stop();              SIGTERM, bounded wait, asserts exit code 0
 *
 * opts.env values override the harness defaults below (null removes a variable);
 * remember that the environment beats the ini file (opts.config), so to test a
 * file value of a key the harness sets (e.g. server.port) pass {KEY: null} in env.
 *
 * Every server gets its own temp dir holding the sqlite store and the events log,
 * ports 0 (the OS picks), and is stopped by the test's t.after() hook even when the
 * test fails.  Servers still alive when the test process exits are SIGKILLed, and
 * on Linux the server also gets PR_SET_PDEATHSIG=SIGKILL (via setpriv) so a killed
 * test process cannot leave one behind.
 *
 * Env knobs: SM_BIN (binary, default build/signal-manager), SM_START_TIMEOUT_MS
 * (wait for "listening", default 10000), SM_STOP_TIMEOUT_MS (wait for exit after
 * SIGTERM, default 10000), SM_KEEP_TMP=1 (keep temp dirs), SM_SHOW_LOGS=1 (print
 * server stderr on failure is always done; this prints it always).
 */

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');
const { Waiters, terminateAllClients, Client, connectClient } = require('./client');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const SM_BIN = path.resolve(ROOT, process.env.SM_BIN || 'build/signal-manager');
const START_TIMEOUT = Number(process.env.SM_START_TIMEOUT_MS || 10000);
const STOP_TIMEOUT = Number(process.env.SM_STOP_TIMEOUT_MS || 10000);
const SETPRIV = '/usr/bin/setpriv';
const USE_SETPRIV = process.platform === 'linux' && fs.existsSync(SETPRIV) && !process.env.SM_NO_SETPRIV;

const live = new Set();
const tmpDirs = new Set();

process.on('exit', () => {
    for (const p of live) {
        try {
            process.kill(p.pid, 'SIGKILL');
        } catch {
            /* gone */
        }
    }
    if (!process.env.SM_KEEP_TMP) {
        for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
    }
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(sig, () => process.exit(128 + os.constants.signals[sig]));
}

function makeTmpDir()
{
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'sm-it-'));
    tmpDirs.add(d);
    return d;
}

/* {section: {key: value}} -> ini text.  Arrays become "key[] = item" lines. */
function iniText(config)
{
    let s = '';
    for (const [section, keys] of Object.entries(config)) {
        s += `[${section}]\n`;
        for (const [k, v] of Object.entries(keys)) {
            if (Array.isArray(v)) for (const item of v) s += `${k}[] = ${item}\n`;
            else s += `${k} = ${v}\n`;
        }
        s += '\n';
    }
    return s;
}

/* Environment for the child: ours minus any SIGNAL_MANAGER_* from outside. */
function baseEnv()
{
    const env = {};
    for (const [k, v] of Object.entries(process.env)) {
        if (!k.startsWith('SIGNAL_MANAGER_')) env[k] = v;
    }
    return env;
}

function spawnBin(args, env, cwd)
{
    const cmd = USE_SETPRIV ? SETPRIV : SM_BIN;
    const argv = USE_SETPRIV ? ['--pdeathsig', 'KILL', '--', SM_BIN, ...args] : args;
    return spawn(cmd, argv, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
}

/*
 * A spawned server process with its output captured.  Not started as a
 * listening server necessarily (see runServer for one-shot commands).
 */
class ServerProcess {
    constructor({ env = {}, args = [], config = null, dir = null, defaults = true } = {})
    {
        this.dir = dir || makeTmpDir();
        const e = baseEnv();
        if (defaults) {
            Object.assign(e, {
                SIGNAL_MANAGER_SERVER_HOST: '127.0.0.1',
                SIGNAL_MANAGER_SERVER_PORT: '0',
                SIGNAL_MANAGER_METRICS_PORT: '0',
                SIGNAL_MANAGER_STORE_PATH: path.join(this.dir, 'signal-manager.db'),
                SIGNAL_MANAGER_EVENTS_PATH: path.join(this.dir, 'events.log'),
                SIGNAL_MANAGER_SERVER_IO_THREADS: '2',
                SIGNAL_MANAGER_SERVER_WORKERS: '2',
                SIGNAL_MANAGER_SERVER_DRAIN_TIMEOUT: '3s',
                SIGNAL_MANAGER_LOGGING_FORMAT: 'json',
            });
        }
        for (const [k, v] of Object.entries(env)) {
            if (v === null || v === undefined) delete e[k];
            else e[k] = String(v);
        }
        this.env = e;
        this.storePath = e.SIGNAL_MANAGER_STORE_PATH;
        this.args = [...args];
        if (config) {
            const file = path.join(this.dir, 'test.ini');
            fs.writeFileSync(file, iniText(config));
            this.args.unshift('--config', file);
            this.configPath = file;
        }
        this.lines = [];    /* raw stderr lines */
        this.logs = [];     /* parsed JSON stderr lines */
        this.stdout = '';
        this.exit = null;   /* {code, signal} */
        this.waiters = new Waiters();

        this.proc = spawnBin(this.args, e, this.dir);
        this.pid = this.proc.pid;
        live.add(this.proc);
        this.proc.stdout.setEncoding('utf8');
        this.proc.stdout.on('data', (d) => { this.stdout += d; this.waiters.poke(); });
        const rl = readline.createInterface({ input: this.proc.stderr, crlfDelay: Infinity });
        rl.on('line', (line) => {
            this.lines.push(line);
            try {
                const j = JSON.parse(line);
                if (j && typeof j === 'object') this.logs.push(j);
            } catch {
                /* not JSON; kept in lines */
            }
            this.waiters.poke();
        });
        this.stderrClosed = new Promise((r) => rl.on('close', r));
        this.proc.on('error', (err) => {
            this.spawnError = err;
            this.exit = this.exit || { code: null, signal: null, error: err };
            live.delete(this.proc);
            this.waiters.poke();
        });
        this.proc.on('exit', (code, signal) => {
            this.exit = { code, signal };
            live.delete(this.proc);
            /* stderr may still hold lines; poke again once it is drained */
            this.stderrClosed.then(() => this.waiters.poke());
            this.waiters.poke();
        });
    }

    get stderr()
    {
        return this.lines.join('\n');
    }

    tail(n = 40)
    {
        return this.lines.slice(-n).join('\n');
    }

    /* Await a log line (parsed JSON) satisfying pred. */
    waitLog(pred, timeoutMs = 5000, what = 'a log line')
    {
        let from = 0;
        return this.waiters.add(() => {
            for (; from < this.logs.length; from++) {
                if (pred(this.logs[from])) return this.logs[from];
            }
            if (this.exit) throw new Error(`server exited (${JSON.stringify(this.exit)}) while waiting for ${what}\n${this.tail()}`);
            return undefined;
        }, timeoutMs, what, () => `stderr:\n${this.tail()}`);
    }

    /* Await process exit (after stderr is drained); resolves {code, signal}. */
    waitExit(timeoutMs = STOP_TIMEOUT)
    {
        return this.waiters.add(() => (this.exit ? this.exit : undefined), timeoutMs,
            `exit of ${path.basename(SM_BIN)} pid ${this.pid}`, () => `stderr:\n${this.tail()}`)
            .then(async (x) => {
                await Promise.race([this.stderrClosed, new Promise((r) => setTimeout(r, 1000).unref())]);
                return x;
            });
    }

    kill(signal = 'SIGTERM')
    {
        if (!this.exit) {
            this.signalsSent = (this.signalsSent || 0) + 1;
            this.lastSignal = signal;
            try {
                this.proc.kill(signal);
            } catch {
                /* gone */
            }
        }
    }
}

class Server extends ServerProcess {
    async started(timeoutMs = START_TIMEOUT)
    {
        let ready;
        try {
            ready = await this.waitLog((j) => j.msg === 'listening', timeoutMs, 'the "listening" log line');
        } catch (e) {
            this.kill('SIGKILL');
            let how;
            if (this.spawnError) how = `spawn failed: ${this.spawnError.message}`;
            else if (this.exit) how = `it exited first (${JSON.stringify(this.exit)})`;
            else how = `no "listening" log line within ${timeoutMs} ms`;
            throw new Error(`server did not start (${SM_BIN} ${this.args.join(' ')}): ${how}\n--- stderr ---\n${this.tail(60)}`);
        }
        assert.ok(Number.isInteger(ready.port) && ready.port > 0, `listening line without a port: ${JSON.stringify(ready)}`);
        this.host = ready.host && ready.host !== '0.0.0.0' && ready.host !== '::' ? ready.host : '127.0.0.1';
        if (this.host.includes(':')) this.host = `[${this.host}]`;
        this.port = ready.port;
        this.metricsPort = ready.metrics_port === undefined ? null : ready.metrics_port;
        this.url = `ws://${this.host}:${this.port}/`;
        this.listening = ready;
        return this;
    }

    /* New Client (not connected) for this server. */
    client(urlPath = '/')
    {
        return new Client(`ws://${this.host}:${this.port}${urlPath}`);
    }

    /* New Client, WebSocket open and CONNECT done. */
    connect(clientId, token, extra)
    {
        return connectClient(this.url, clientId, token, extra);
    }

    /*
     * SIGTERM (or opts.signal), bounded wait, assert the exit code
     * (opts.expectCode, default 0; null to skip).  Idempotent.
     */
    async stop({ signal = 'SIGTERM', expectCode = 0, timeoutMs = STOP_TIMEOUT } = {})
    {
        if (!this.stopping) {
            this.stopping = (async () => {
                /* a test that already sent this signal (e.g. to watch the drain) must not
                 * get a second one: servers treat a second stop signal as "stop now" */
                if (this.lastSignal !== signal) this.kill(signal);
                try {
                    return await this.waitExit(timeoutMs);
                } catch (e) {
                    this.kill('SIGKILL');
                    await this.waitExit(2000).catch(() => {});
                    throw new Error(`server did not exit within ${timeoutMs} ms of ${signal}; killed\n${this.tail()}`);
                }
            })();
        }
        const ex = await this.stopping;
        if (expectCode !== null) {
            assert.equal(ex.code, expectCode,
                `server exit after ${signal}: ${JSON.stringify(ex)} (expected code ${expectCode})\n--- stderr ---\n${this.tail()}`);
        }
        return ex;
    }
}

/*
 * Start a server and wait until it listens.  When `t` (a node:test context) is
 * given, the server is stopped in t.after() (exit code checked unless the test
 * already stopped it or opts.checkExit is false) and open clients are dropped.
 */
async function startServer(t, opts = {})
{
    const srv = new Server(opts);
    if (t) {
        t.after(async () => {
            terminateAllClients();
            if (process.env.SM_SHOW_LOGS) process.stderr.write(`--- server ${srv.pid} ---\n${srv.stderr}\n`);
            /* a test that stopped or killed the server itself checked the exit already */
            const check = opts.checkExit !== false && !srv.stopping && !srv.exit;
            await srv.stop({ expectCode: check ? 0 : null });
        });
    }
    await srv.started(opts.startTimeoutMs);
    return srv;
}

/*
 * Run the binary to completion (e.g. --check-config, a bad config); resolves
 * {code, signal, stdout, stderr, logs, listening}.  A process that starts
 * listening instead of exiting is killed at once and reported with
 * listening: true (code null), so a wrongly accepted config fails fast.
 */
async function runServer(opts = {}, timeoutMs = STOP_TIMEOUT)
{
    const p = new ServerProcess(opts);
    let listening = false;
    const heard = p.waitLog((j) => j.msg === 'listening', timeoutMs, 'listening').then(() => {
        listening = true;
        p.kill('SIGKILL');
    }, () => {});
    try {
        const ex = await p.waitExit(timeoutMs + 1000);
        await heard;
        return {
            ...ex, code: listening ? null : ex.code, listening,
            stdout: p.stdout, stderr: p.stderr, logs: p.logs, dir: p.dir,
        };
    } catch (e) {
        p.kill('SIGKILL');
        throw e;
    }
}

/* Per-test time bound for node:test's { timeout } option. */
const TEST_TIMEOUT = Number(process.env.SM_TEST_TIMEOUT_MS || 20000);

module.exports = { TEST_TIMEOUT, startServer, runServer, Server, ServerProcess, makeTmpDir, iniText, SM_BIN, ROOT };
