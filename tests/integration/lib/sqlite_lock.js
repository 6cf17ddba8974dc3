'use strict';
/*
 * Hold an exclusive write lock on a SQLite database from another process (the
 * sqlite3 CLI), so the server's store writes fail with SQLITE_BUSY.
 *
 *   const lock = await lockDatabase(t, '/path/db');   // resolves once locked
 *   await lock.release();                             // COMMIT, wait for exit
 *
 * With t given, the sqlite3 process is killed in t.after() whatever happens.
 */

const { spawn } = require('node:child_process');
const { until } = require('./client');

function tryLock(dbPath, timeoutMs)
{
    return new Promise((resolve, reject) => {
        const p = spawn('sqlite3', ['-bail', dbPath], { stdio: ['pipe', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        let done = false;
        const finish = (e, v) => {
            if (done) return;
            done = true;
            clearTimeout(timer);
            if (e) {
                p.kill('SIGKILL');
                reject(e);
            } else {
                resolve(v);
            }
        };
        const timer = setTimeout(() => finish(new Error(`sqlite3 lock: no confirmation within ${timeoutMs} ms (stdout ${JSON.stringify(out)} stderr ${JSON.stringify(err)})`)), timeoutMs);
        p.on('error', (e) => finish(new Error(`cannot run sqlite3: ${e.message}`)));
        p.stdout.setEncoding('utf8');
        p.stderr.setEncoding('utf8');
        p.stdout.on('data', (d) => {
            out += d;
            if (/^locked$/m.test(out)) finish(null, p);
        });
        p.stderr.on('data', (d) => { err += d; });
        p.on('exit', (code) => finish(new Error(`sqlite3 exited ${code} before locking: ${err.trim()}`)));
        p.stdin.write("PRAGMA busy_timeout=0;\nBEGIN EXCLUSIVE;\nSELECT 'locked';\n");
    });
}

async function lockDatabase(t, dbPath, timeoutMs = 5000)
{
    /* BEGIN EXCLUSIVE fails while the server itself writes; retry (bounded) */
    const p = await until(() => tryLock(dbPath, 2000), timeoutMs, `an exclusive lock on ${dbPath}`, 20);
    let exited = false;
    const exitP = new Promise((r) => p.on('exit', (code) => { exited = true; r(code); }));
    const lock = {
        proc: p,
        async release()
        {
            if (exited) return;
            p.stdin.end('COMMIT;\n.quit\n');
            const timer = setTimeout(() => p.kill('SIGKILL'), 5000);
            await exitP;
            clearTimeout(timer);
        },
        kill()
        {
            if (!exited) p.kill('SIGKILL');
        },
    };
    if (t) t.after(() => lock.kill());
    process.once('exit', () => lock.kill());
    return lock;
}

module.exports = { lockDatabase };
