'use strict';
/* Demo page files on the WebSocket port: /demo/ from server.demo_dir, /demo/sdk/ from
 * server.sdk_dir.  The directories are temp dirs filled here, not the repository's. */

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { startServer, makeTmpDir, TEST_TIMEOUT } = require('./lib/harness');
const { httpGet } = require('./lib/client');

const opts = { timeout: TEST_TIMEOUT };
const MEM = { SIGNAL_MANAGER_STORE_BACKEND: 'memory' };

const SECRET = 'TOP-SECRET-OUTSIDE-THE-TREE';

/*
 * <tmp>/demo:  index.html, app.js, style.css, data.json, .hidden, sdk/x.js (must NOT be
 *              what /demo/sdk/x.js serves), sub/index.html, sub/page.html,
 *              escape -> ../outside/secret.txt, escdir -> ../outside, inlink -> app.js,
 *              linkdir/index.html -> ../outside/secret.txt
 * <tmp>/sdk:   x.js, index.js, out -> ../outside/secret.txt
 * <tmp>/outside/secret.txt, <tmp>/demo.txt (a sibling whose name starts like the dir)
 */
function makeTree()
{
    const root = makeTmpDir();
    const demo = path.join(root, 'demo');
    const sdk = path.join(root, 'sdk');
    const outside = path.join(root, 'outside');
    for (const d of [demo, sdk, outside, path.join(demo, 'sdk'), path.join(demo, 'sub'), path.join(demo, 'linkdir'),
        path.join(root, 'empty')]) {
        fs.mkdirSync(d, { recursive: true });
    }
    const files = {
        'demo/index.html': '<!doctype html><title>demo index</title>\n',
        'demo/app.js': 'export const app = "demo app";\n',
        'demo/style.css': 'body { color: #123; }\n',
        'demo/data.json': '{"k": 1}\n',
        'demo/.hidden': 'hidden file\n',
        'demo/sdk/x.js': 'WRONG: demo_dir/sdk/x.js\n',
        'demo/sub/index.html': '<p>sub index</p>\n',
        'demo/sub/page.html': '<p>sub page</p>\n',
        'sdk/x.js': 'export const sdk = "sdk x";\n',
        'sdk/index.js': 'export default 1;\n',
        'outside/secret.txt': `${SECRET}\n`,
        'demo.txt': `${SECRET} sibling\n`,
    };
    for (const [rel, text] of Object.entries(files)) fs.writeFileSync(path.join(root, rel), text);
    fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(demo, 'escape.txt'));
    fs.symlinkSync('../outside', path.join(demo, 'escdir'));
    fs.symlinkSync('app.js', path.join(demo, 'inlink.js'));
    fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(demo, 'linkdir', 'index.html'));
    fs.symlinkSync(path.join(outside, 'secret.txt'), path.join(sdk, 'out.js'));
    return { root, demo, sdk, outside, empty: path.join(root, 'empty'), files };
}

async function serve(t, tree, extra = {})
{
    return startServer(t, {
        env: {
            ...MEM,
            SIGNAL_MANAGER_SERVER_DEMO_DIR: tree.demo,
            SIGNAL_MANAGER_SERVER_SDK_DIR: tree.sdk,
            ...extra,
        },
    });
}

const get = (srv, p, o) => httpGet(srv.port, p, o);

function assertNotLeaked(res, what)
{
    assert.ok(!res.raw.includes(SECRET), `${what}: the outside file was served:\n${res.raw.slice(0, 300)}`);
}

test('GET /demo -> 301 to /demo/ (query ignored)', opts, async (t) => {
    const tree = makeTree();
    const srv = await serve(t, tree);
    for (const p of ['/demo', '/demo?x=1']) {
        const r = await get(srv, p);
        assert.equal(r.status, 301, `${p}: ${r.raw.slice(0, 200)}`);
        assert.equal(r.headers.location, '/demo/');
    }
});

test('GET /demo/ serves index.html; files with the right content types', opts, async (t) => {
    const tree = makeTree();
    const srv = await serve(t, tree);
    const cases = [
        ['/demo/', 'demo/index.html', /^text\/html\b/],
        ['/demo/index.html', 'demo/index.html', /^text\/html\b/],
        ['/demo/index.html?v=3', 'demo/index.html', /^text\/html\b/],
        ['/demo/app.js', 'demo/app.js', /^(text|application)\/javascript\b/],
        ['/demo/style.css', 'demo/style.css', /^text\/css\b/],
        ['/demo/data.json', 'demo/data.json', /^application\/json\b/],
        ['/demo/sub/', 'demo/sub/index.html', /^text\/html\b/],
        ['/demo/sub/page.html', 'demo/sub/page.html', /^text\/html\b/],
        ['/demo/inlink.js', 'demo/app.js', /javascript/],
    ];
    for (const [p, file, ctype] of cases) {
        const r = await get(srv, p);
        assert.equal(r.status, 200, `${p}: ${r.raw.slice(0, 200)}`);
        assert.equal(r.body, tree.files[file], `${p} body`);
        assert.match(r.headers['content-type'] || '', ctype, `${p} content-type`);
        assert.equal(Number(r.headers['content-length']), Buffer.byteLength(tree.files[file]), `${p} content-length`);
    }
});

test('GET /demo/sdk/... serves from server.sdk_dir, not demo_dir/sdk', opts, async (t) => {
    const tree = makeTree();
    const srv = await serve(t, tree);
    const r = await get(srv, '/demo/sdk/x.js');
    assert.equal(r.status, 200, r.raw.slice(0, 200));
    assert.equal(r.body, tree.files['sdk/x.js']);
    assert.match(r.headers['content-type'], /javascript/);
    const i = await get(srv, '/demo/sdk/index.js');
    assert.equal(i.body, tree.files['sdk/index.js']);
    assert.equal((await get(srv, '/demo/sdk/missing.js')).status, 404);
});

test('HEAD: status and headers of the GET, no body', opts, async (t) => {
    const tree = makeTree();
    const srv = await serve(t, tree);
    for (const [p, file] of [['/demo/', 'demo/index.html'], ['/demo/sdk/x.js', 'sdk/x.js'], ['/demo/style.css', 'demo/style.css']]) {
        const r = await get(srv, p, { method: 'HEAD' });
        const g = await get(srv, p);
        assert.equal(r.status, 200, `${p}: ${r.raw.slice(0, 200)}`);
        assert.equal(r.headers['content-type'], g.headers['content-type']);
        const head = r.raw.indexOf('\r\n\r\n');
        assert.equal(r.raw.length, head + 4, `HEAD ${p} carried a body: ${JSON.stringify(r.raw.slice(head + 4, head + 80))}`);
        /* RFC 9110 §8.6: a Content-Length in a HEAD response must be the GET's */
        if (r.headers['content-length'] !== undefined) {
            assert.equal(Number(r.headers['content-length']), Buffer.byteLength(tree.files[file]),
                `HEAD ${p}: Content-Length ${r.headers['content-length']} but the GET body has ${Buffer.byteLength(tree.files[file])} bytes`);
        }
    }
    assert.equal((await get(srv, '/demo', { method: 'HEAD' })).status, 301);
    assert.equal((await get(srv, '/demo/missing.html', { method: 'HEAD' })).status, 404);
});

test('missing files -> 404', opts, async (t) => {
    const tree = makeTree();
    const srv = await serve(t, tree);
    for (const p of ['/demo/missing.html', '/demo/sub/missing.js', '/demo/nodir/x.js', '/demox', '/demo.txt']) {
        const r = await get(srv, p);
        assert.equal(r.status, 404, `${p}: ${r.raw.slice(0, 200)}`);
        assertNotLeaked(r, p);
    }
});

test('traversal attempts -> 403/404 and never the file', opts, async (t) => {
    const tree = makeTree();
    const srv = await serve(t, tree);
    const rel = path.relative('/', path.join(tree.outside, 'secret.txt'));
    const attempts = [
        '/demo/../outside/secret.txt',
        '/demo/../../../../../../etc/passwd',
        `/demo/${'../'.repeat(12)}${rel}`,
        '/demo/./index.html',
        '/demo/%2e%2e/outside/secret.txt',
        '/demo/%2E%2E/%2E%2E/etc/passwd',
        '/demo/..%2foutside/secret.txt',
        '/demo/%2e%2e%2foutside%2fsecret.txt',
        '/demo/.hidden',
        '/demo/sub/../.hidden',
        '/demo//x',
        '/demo//etc/passwd',
        `/demo//${rel}`,
        '/demo/sub//page.html',
        '/demo/..\\outside\\secret.txt',
        '/demo/escape.txt',          /* symlink to a file outside the tree */
        '/demo/escdir/secret.txt',   /* symlinked directory outside the tree */
        '/demo/linkdir/',            /* a directory whose index.html links outside */
        '/demo/sdk/out.js',          /* same in sdk_dir */
        '/demo/sdk/../../outside/secret.txt',
        '/demo/sdk/%2e%2e/outside/secret.txt',
        '/demo/sdk/.%2e/outside/secret.txt',
    ];
    for (const p of attempts) {
        const r = await get(srv, p);
        assert.ok(r.status === 403 || r.status === 404, `${p}: HTTP ${r.status}\n${r.raw.slice(0, 300)}`);
        assertNotLeaked(r, p);
        assert.ok(!r.raw.includes('root:x:0:0'), `${p}: /etc/passwd served`);
        assert.ok(!r.raw.includes('hidden file'), `${p}: the dot-file was served`);
    }
});

test('server.demo_dir empty, or an empty / missing directory -> 404', opts, async (t) => {
    const tree = makeTree();
    for (const [demo, sdk] of [['', ''], [tree.empty, tree.empty], [path.join(tree.root, 'nope'), path.join(tree.root, 'nope2')]]) {
        const srv = await serve(t, tree, { SIGNAL_MANAGER_SERVER_DEMO_DIR: demo, SIGNAL_MANAGER_SERVER_SDK_DIR: sdk });
        for (const p of ['/demo/', '/demo/index.html', '/demo/sdk/x.js', '/demo/sdk/']) {
            const r = await get(srv, p);
            assert.equal(r.status, 404, `demo_dir=${JSON.stringify(demo)} ${p}: ${r.raw.slice(0, 200)}`);
        }
        await srv.stop();
    }
});

test('other methods on /demo/ are not served; /health and the upgrade still work', opts, async (t) => {
    const tree = makeTree();
    const srv = await serve(t, tree);
    const r = await httpGet(srv.port, '/demo/index.html', { method: 'POST', headers: ['Content-Length: 0'] });
    assert.ok(r.status >= 400 && r.status < 500, `POST: HTTP ${r.status}`);
    assert.ok(!r.body.includes('demo index'), 'POST served the file');
    assert.equal((await get(srv, '/health')).status, 200);
    const c = await srv.connect('test_client_1', 'test_token_1');
    assert.ok(c.isOpen);
});
