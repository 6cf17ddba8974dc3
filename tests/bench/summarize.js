#!/usr/bin/env node
// Summarise signal-bench JSON lines for `make bench` (scripts/bench.sh):
// medians per (case, server), our/Node ratios, and the issue 6 budget check.
//
// Usage: node tests/bench/summarize.js results.jsonl
// Each line is signal-bench's JSON output; bench.sh sets its label to
// "case=<name> server=<name>".  Servers named "node" are the reference peer;
// every other server is compared with it case by case.
'use strict';

const fs = require('node:fs');

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: summarize.js results.jsonl\n');
  process.exit(2);
}

const rows = fs.readFileSync(file, 'utf8').split('\n')
  .filter((l) => l.startsWith('{'))
  .map((l) => JSON.parse(l));

function labelOf(r) {
  const out = {};
  for (const kv of String(r.label || '').split(' ')) {
    const i = kv.indexOf('=');
    if (i > 0) out[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return out;
}

function median(xs) {
  const v = xs.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

// Group runs: key "case|server", keeping first-seen order.
const groups = new Map();
for (const r of rows) {
  const l = labelOf(r);
  const key = `${l.case || r.scenario}|${l.server || '?'}`;
  if (!groups.has(key)) groups.set(key, { case: l.case || r.scenario, server: l.server || '?', runs: [] });
  groups.get(key).runs.push(r);
}

const med = new Map();
for (const [key, g] of groups) {
  const pick = (f) => median(g.runs.map(f));
  med.set(key, {
    case: g.case, server: g.server, n: g.runs.length, unit: g.runs[0].unit,
    throughput: pick((r) => r.throughput),
    p50: pick((r) => r.p50_us), p99: pick((r) => r.p99_us), p999: pick((r) => r.p999_us),
    cpu: pick((r) => r.server_cpu_us_per_op), cores: pick((r) => r.server_cpu_cores),
    ccores: pick((r) => r.client_cpu_cores),
    other: pick((r) => r.other_busy_cores),
    rss: pick((r) => r.rss_per_conn_kib), ready: pick((r) => r.clients_ready),
    errors: g.runs.reduce((a, r) => a + (r.errors || 0), 0),
  });
}

function fmt(x, d = 0) {
  if (x === undefined) return '-';
  return x.toLocaleString('en-US', { minimumFractionDigits: d, maximumFractionDigits: d });
}
function pad(s, n, right) {
  s = String(s);
  return right ? s.padStart(n) : s.padEnd(n);
}

const head = ['case', 'server', 'runs', 'throughput', 'unit', 'p50 us', 'p99 us', 'p99.9 us',
  'srv us/op', 'srv cores', 'bench cores', 'other cores', 'RSS KiB/conn', 'errors'];
const widths = [12, 10, 4, 11, 13, 9, 9, 9, 9, 9, 11, 11, 12, 6];
const line = (cells) => cells.map((c, i) => pad(c, widths[i], i >= 2 && i !== 4)).join('  ');
console.log('medians ("other cores": machine CPU used by neither the server nor signal-bench');
console.log('during the window; above ~0.1 the figures are disturbed by other work)');
console.log(line(head));
for (const m of med.values()) {
  console.log(line([m.case, m.server, m.n, fmt(m.throughput), m.unit, fmt(m.p50, 1), fmt(m.p99, 1),
    fmt(m.p999, 1), fmt(m.cpu, 2), fmt(m.cores, 2), fmt(m.ccores, 2), fmt(m.other, 2),
    fmt(m.rss, 2), m.errors]));
}

// Ratios against the Node peer.
const ratioLines = [];
for (const m of med.values()) {
  if (m.server === 'node') continue;
  const n = med.get(`${m.case}|node`);
  if (!n) continue;
  const parts = [];
  if (m.throughput && n.throughput) parts.push(`throughput ${fmt(m.throughput / n.throughput, 2)}x`);
  if (m.cpu && n.cpu) parts.push(`server CPU/op: Node needs ${fmt(n.cpu / m.cpu, 2)}x ours`);
  if (m.rss && n.rss) parts.push(`RSS/conn: Node needs ${fmt(n.rss / m.rss, 2)}x ours`);
  if (m.p99 && n.p99) parts.push(`p99 ${fmt(m.p99 / n.p99, 2)}x`);
  ratioLines.push(`  ${pad(m.case, 12)} ${pad(m.server, 10)} ${parts.join(', ')}`);
}
if (ratioLines.length) {
  console.log('\nours / Node ws reference (same machine, same run)');
  for (const l of ratioLines) console.log(l);
}

// Budget of issue 6 item 3, for the cases bench.sh names.
const checks = [];
function check(caseName, what, ok, value) {
  checks.push(`  ${ok ? 'ok  ' : 'MISS'}  ${pad(caseName, 12)} ${what}: ${value}`);
}
for (const m of med.values()) {
  if (m.server === 'node') continue;
  const n = med.get(`${m.case}|node`);
  const tag = `${m.case} [${m.server}]`;
  switch (m.case) {
    case 'rtt':
      check(tag, '>= 95k rt/s', m.throughput >= 95000, `${fmt(m.throughput)} rt/s`);
      break;
    case 'rtt16':
      if (m.cpu !== undefined) check(tag, 'server CPU <= 3 us per round trip', m.cpu <= 3, `${fmt(m.cpu, 2)} us`);
      if (n && n.cpu && m.cpu) check(tag, '>= 8x Node ws (server CPU/op)', n.cpu / m.cpu >= 8, `${fmt(n.cpu / m.cpu, 2)}x`);
      break;
    case 'churn':
      if (m.cpu !== undefined) check(tag, 'server CPU <= 70 us per handshake', m.cpu <= 70, `${fmt(m.cpu, 1)} us`);
      break;
    case 'idle':
      if (m.rss !== undefined) check(tag, `RSS <= 2 KiB per connection (${fmt(m.ready)} conns)`, m.rss <= 2, `${fmt(m.rss, 2)} KiB`);
      break;
    case 'route':
      if (m.cores) check(tag, '>= 100k SIGNALs/s per server core', m.throughput / m.cores >= 100000,
        `${fmt(m.throughput / m.cores)} per core (${fmt(m.throughput)} msgs/s at ${fmt(m.cores, 2)} cores)`);
      break;
    case 'route-rate':
      check(tag, 'p99 < 1 ms at 20k SIGNALs/s', m.p99 < 1000, `p99 ${fmt(m.p99, 1)} us at ${fmt(m.throughput)} msgs/s`);
      break;
    default:
      break;
  }
}
if (checks.length) {
  console.log('\nbudget (issue 6, item 3)');
  for (const c of checks) console.log(c);
}
