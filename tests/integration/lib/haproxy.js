'use strict';
/*
 * A real HAProxy (Debian package `haproxy`) as a child process in front of
 * Signal Manager instances, for the PROXY protocol tests (issue 5 item 4).
 *
 *   const hp = await startHaproxy(t, { servers: [{ name: 'sm1', port }, ...] });
 *   hp.port                          frontend port on 127.0.0.1 (mode tcp)
 *   await hp.stat()                  Map name -> row of `show stat` for the backend's servers
 *   await hp.waitStatus('sm1', /^UP/, 5000)   bounded wait on a server's status
 *   hp.output                        HAProxy's stdout+stderr (for failure messages)
 *   await hp.stop()                  SIGTERM (then SIGKILL), bounded
 *
 * Config: a frontend bound to a free loopback port, a backend with one `server`
 * line per instance using send-proxy-v2, `balance roundrobin` (opts.balance),
 * health checks `option httpchk GET /ready` every opts.inter ms (fall 1, rise 1),
 * and an admin stats socket in the temp dir.  HAProxy runs in the foreground
 * (-db) under setpriv --pdeathsig KILL when available, and is stopped in
 * t.after() whatever happens.  haproxyPath() is null when it is not installed.
 */

const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { spawn, spawnSync } = require('node:child_process');
const { makeTmpDir } = require('./harness');
const { until, DEFAULT_TIMEOUT } = require('./client');
const { freePort } = require('./rawnet');

const SETPRIV = '/usr/bin/setpriv';
const live = new Set();
process.on('exit', () => {
    for (const p of live) {
        try {
            process.kill(p.pid, 'SIGKILL');
        } catch {
            /* gone */
        }
    }
});

function haproxyPath()
{
    for (const p of ['/usr/sbin/haproxy', '/usr/local/sbin/haproxy', '/usr/bin/haproxy']) {
        if (fs.existsSync(p)) return p;
    }
    const r = spawnSync('sh', ['-c', 'command -v haproxy'], { encoding: 'utf8' });
    return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : null;
}

function configText({ port, servers, sock, balance, inter, sendProxy })
{
    const lines = [
        'global',
        `    stats socket ${sock} mode 600 level admin`,
        '    maxconn 512',
        '    log stderr format raw local0 info',
        '',
        'defaults',
        '    mode tcp',
        '    log global',
        '    option tcplog',
        '    timeout connect 2s',
        '    timeout client 60s',
        '    timeout server 60s',
        '    timeout check 1s',
        '',
        'frontend fe',
        `    bind 127.0.0.1:${port}`,
        '    default_backend be',
        '',
        'backend be',
        `    balance ${balance}`,
        '    option httpchk GET /ready',
        '    http-check expect status 200',
        `    default-server inter ${inter} fastinter ${inter} downinter ${inter} fall 1 rise 1 check ${sendProxy}`,
    ];
    for (const s of servers) lines.push(`    server ${s.name} 127.0.0.1:${s.port}`);
    return `${lines.join('\n')}\n`;
}

/* One command on the admin socket; resolves the whole answer. */
function adminCommand(sock, cmd, timeoutMs = 2000)
{
    return new Promise((resolve, reject) => {
        const c = net.connect(sock);
        let out = '';
        const timer = setTimeout(() => {
            c.destroy();
            reject(new Error(`haproxy admin socket: no answer to "${cmd}" within ${timeoutMs} ms`));
        }, timeoutMs);
        c.setEncoding('utf8');
        c.on('connect', () => c.write(`${cmd}\n`));
        c.on('data', (d) => { out += d; });
        c.on('error', (e) => {
            clearTimeout(timer);
            reject(e);
        });
        c.on('close', () => {
            clearTimeout(timer);
            resolve(out);
        });
    });
}

async function startHaproxy(t, { servers, balance = 'roundrobin', inter = 100, sendProxy = 'send-proxy-v2', timeoutMs = 10000 } = {})
{
    const bin = haproxyPath();
    if (!bin) throw new Error('haproxy not installed (Debian package `haproxy`; scripts/deps.sh test installs it)');
    const dir = makeTmpDir();
    const sock = path.join(dir, 'admin.sock');
    const cfgFile = path.join(dir, 'haproxy.cfg');
    let lastErr;
    /* the frontend port is picked free and then bound by haproxy: retry on a lost race */
    for (let attempt = 0; attempt < 3; attempt++) {
        const port = await freePort();
        fs.writeFileSync(cfgFile, configText({ port, servers, sock, balance, inter, sendProxy }));
        const check = spawnSync(bin, ['-c', '-f', cfgFile], { encoding: 'utf8', timeout: 10000 });
        if (check.status !== 0) {
            throw new Error(`haproxy -c rejected the generated config:\n${fs.readFileSync(cfgFile, 'utf8')}\n${check.stdout}${check.stderr}`);
        }
        const useSetpriv = fs.existsSync(SETPRIV);
        const argv = ['-db', '-f', cfgFile];
        const proc = useSetpriv
            ? spawn(SETPRIV, ['--pdeathsig', 'KILL', '--', bin, ...argv], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
            : spawn(bin, argv, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
        live.add(proc);
        const hp = {
            port, proc, dir, sock, cfgFile, output: '', exit: null,
            servers: servers.map((s) => s.name),
        };
        const exited = new Promise((resolve) => proc.on('exit', (code, signal) => {
            hp.exit = { code, signal };
            live.delete(proc);
            resolve(hp.exit);
        }));
        proc.stdout.setEncoding('utf8');
        proc.stderr.setEncoding('utf8');
        proc.stdout.on('data', (d) => { hp.output += d; });
        proc.stderr.on('data', (d) => { hp.output += d; });
        hp.stop = async () => {
            if (hp.exit) return hp.exit;
            proc.kill('SIGTERM');
            const timer = setTimeout(() => proc.kill('SIGKILL'), 3000);
            const ex = await exited;
            clearTimeout(timer);
            return ex;
        };
        hp.tail = (n = 30) => hp.output.split('\n').slice(-n).join('\n');
        hp.stat = async () => {
            const text = await adminCommand(sock, 'show stat');
            const lines = text.split('\n').filter((l) => l.trim());
            const cols = lines[0].replace(/^# /, '').split(',');
            const out = new Map();
            for (const l of lines.slice(1)) {
                const v = l.split(',');
                const row = Object.fromEntries(cols.map((c, i) => [c, v[i]]));
                if (row.pxname === 'be' && hp.servers.includes(row.svname)) out.set(row.svname, row);
            }
            return out;
        };
        hp.waitStatus = (name, re, ms = DEFAULT_TIMEOUT) => until(async () => {
            if (hp.exit) throw Object.assign(new Error(`haproxy exited ${JSON.stringify(hp.exit)}:\n${hp.tail()}`), { fatal: true });
            const row = (await hp.stat()).get(name);
            if (!row) throw new Error(`no row for ${name}`);
            if (re.test(row.status)) return row;
            throw new Error(`${name}: status ${row.status} check ${row.check_status}/${row.check_code}`);
        }, ms, `haproxy server ${name} status ${re}`, 10);
        if (t) t.after(() => hp.stop());
        try {
            await until(async () => {
                if (hp.exit) throw Object.assign(new Error(`haproxy exited ${JSON.stringify(hp.exit)}`), { fatal: true });
                await adminCommand(sock, 'show info', 500);
                return true;
            }, timeoutMs, 'the haproxy admin socket', 20);
            return hp;
        } catch (e) {
            lastErr = new Error(`haproxy did not start: ${e.message}\n${hp.tail()}`);
            await hp.stop();
            if (!/cannot bind|Address already in use/i.test(hp.output)) break;
        }
    }
    throw lastErr;
}

module.exports = { startHaproxy, haproxyPath, adminCommand };
