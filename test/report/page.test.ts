import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const RUN = ['--backend', 'cpu', '--train-limit', '600', '--test-limit', '100', '--layers', '2', '--width', '16', '--batch-size', '20', '--epochs', '2'];

function sll(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sll-report-'));
const runs = ['1', '0.5'].map((keep) => {
  const out = path.join(dir, `keep-${keep}`);
  const r = sll('train', ...RUN, '--keep', keep, '--out', out);
  assert.equal(r.code, 0, r.stderr);
  return out;
});
const memory = path.join(dir, 'memory.jsonl');
const bench = sll('bench', 'memory', '--model', 'mlp', '--depths', '2,3,5', '--method', 'sll,bp', '--width', '32', '--batch-size', '16', '--backend', 'cpu', '--json');
assert.equal(bench.code, 0, bench.stderr);
fs.writeFileSync(memory, bench.stdout);

test('sll report writes one offline page: the runs table, curves, the ablation over the one option that differs, memory with BP/SLL at the largest depth', () => {
  const out = path.join(dir, 'report.html');
  const r = sll('report', ...runs, memory, '--out', out, '--examples', '60', '--backend', 'cpu');
  assert.equal(r.code, 0, r.stderr);
  const html = fs.readFileSync(out, 'utf8');
  assert.doesNotMatch(html, /https?:\/\//, 'no external URL');
  assert.doesNotMatch(html, /<script/);
  const figures = ['curves', 'ablation', 'memory-mlp-activation_peak_bytes', 'memory-mlp-peak_bytes', 'embedding-1', 'embedding-2', 'cka-1', 'cka-2', 'hist-weights-2', 'hist-activations-2'];
  for (const id of figures) {
    assert.match(html, new RegExp(`<figure id="${id}"><svg[^>]*>.*?</svg></figure>`, 's'), id);
  }
  assert.match(html, /Ablation: --keep/);
  // The numbers stated come from the files: each run's accuracy, and BP over SLL at depth 5 from the rows.
  for (const run of runs) {
    const s = JSON.parse(fs.readFileSync(path.join(run, 'summary.json'), 'utf8'));
    assert.match(html, new RegExp(`<td>${(100 * s.test_accuracy).toFixed(2)}%</td>`));
    assert.match(r.stdout, new RegExp(`${(100 * s.test_accuracy).toFixed(2)}%`));
  }
  const rows = fs.readFileSync(memory, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  for (const [field, measure] of [['activation_peak_bytes', 'activation peak'], ['peak_bytes', 'total peak']]) {
    const at = (method: string) => rows.find((x) => x.method === method && x.depth === 5)[field];
    const ratio = (at('bp') / at('sll')).toFixed(1);
    assert.match(html, new RegExp(`BP / SLL = ${ratio}x at depth 5`), measure);
    assert.match(r.stdout, new RegExp(`mlp ${measure}: BP / SLL = ${(at('bp') / at('sll')).toFixed(2)}x at depth 5`));
  }
  // Each run's CKA of unit outputs with the input: stated on stdout, drawn (2 decimals) in its heat map.
  runs.forEach((run, i) => {
    const line = r.stdout.match(new RegExp(`${run}: CKA with the input per unit (.*)`));
    assert.ok(line, `CKA line of ${run}`);
    const cka = line[1].split(' ').map(Number);
    assert.equal(cka.length, 2);
    const heat = html.match(new RegExp(`<figure id="cka-${i + 1}">(.*?)</figure>`, 's'))![1];
    for (const c of cka) {
      assert.ok(c > 0 && c <= 1, `${c}`);
      assert.match(heat, new RegExp(`>${c.toFixed(2)}<`));
    }
  });
  // UMAP of h_i and v_i for both units: 60 points in each of the 4 panels.
  const embedding = html.match(/<figure id="embedding-1">(.*?)<\/figure>/s)![1];
  const scatters = [...embedding.matchAll(/<g class="mark-symbol role-mark[^"]*"[^>]*>(.*?)<\/g>/gs)];
  assert.deepEqual(scatters.map((m) => (m[1].match(/<path/g) ?? []).length), [60, 60, 60, 60]);
  // A line per (run, unit) in each of the 4 panels: 2 runs x 2 units x 4.
  const curves = html.match(/<figure id="curves">(.*?)<\/figure>/s)![1];
  assert.equal((curves.match(/class="mark-line role-mark/g) ?? []).length, 16);
});

test('sll train --report writes OUT/report.html of the run at the end', () => {
  const out = path.join(dir, 'with-report');
  const ok = sll('train', ...RUN.slice(0, -2), '--epochs', '1', '--report', '--out', out);
  assert.equal(ok.code, 0, ok.stderr);
  const html = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
  assert.match(html, /<figure id="curves"><svg/);
  assert.match(html, /<figure id="cka-1"><svg/);
  assert.match(ok.stdout, new RegExp(`wrote ${out}/report\\.html`));
});

const CHROMIUM = '/usr/bin/chromium';

test('the report opens in headless Chromium offline with no console error, every chart drawn; a screenshot is written', async (t) => {
  if (!fs.existsSync(CHROMIUM)) {
    t.skip(`no ${CHROMIUM} (apt-get install chromium; .ci/run does)`);
    return;
  }
  const out = path.join(dir, 'browser.html');
  assert.equal(sll('report', ...runs, memory, '--out', out, '--examples', '40', '--backend', 'cpu').code, 0);
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    // Offline: any request other than the file itself fails the test.
    const requests: string[] = [];
    await page.route('**/*', (route) => (route.request().url().startsWith('file://') ? route.continue() : (requests.push(route.request().url()), route.abort())));
    const errors: string[] = [];
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`file://${out}`);
    const charts = await page.$$eval('figure', (figures) =>
      figures.map((f) => {
        const svg = f.querySelector('svg');
        const box = svg?.getBoundingClientRect();
        return { id: f.id, width: box?.width ?? 0, height: box?.height ?? 0, marks: svg?.querySelectorAll('path, rect, line').length ?? 0 };
      }),
    );
    assert.deepEqual(errors, []);
    assert.deepEqual(requests, []);
    assert.equal(charts.length, 10);
    for (const c of charts) assert.ok(c.width > 100 && c.height > 100 && c.marks > 10, JSON.stringify(c));
  } finally {
    await browser.close();
  }
  // sll report --screenshot takes the same page's picture, --figures one picture per figure.
  const shot = path.join(dir, 'report.png');
  const figures = path.join(dir, 'figures');
  const r = sll('report', ...runs, memory, '--out', out, '--examples', '40', '--backend', 'cpu', '--screenshot', shot, '--figures', figures, '--chromium', CHROMIUM);
  assert.equal(r.code, 0, r.stderr);
  const png = fs.readFileSync(shot);
  assert.ok(png.subarray(1, 4).toString() === 'PNG' && png.length > 50_000, `screenshot ${shot}: ${png.length} bytes`);
  const ids = [...fs.readFileSync(out, 'utf8').matchAll(/<figure id="([^"]+)"/g)].map((m) => `${m[1]}.png`).sort();
  assert.ok(ids.includes('curves.png') && ids.includes('embedding-1.png'), ids.join(' '));
  assert.deepEqual(fs.readdirSync(figures).sort(), ids);
  for (const f of ids) {
    const bytes = fs.readFileSync(path.join(figures, f));
    assert.ok(bytes.subarray(1, 4).toString() === 'PNG' && bytes.length > 2000, `${f}: ${bytes.length} bytes`);
  }
  const missing = sll('report', ...runs, '--out', out, '--examples', '0', '--screenshot', shot, '--chromium', '/nonexistent/chromium');
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--screenshot needs a Chromium: \/nonexistent\/chromium not found/);
});

test('sll report names what it cannot read, with exit 2', () => {
  const bad = path.join(dir, 'bad.jsonl');
  fs.writeFileSync(bad, '{"method":"sll","depth":2}\nnot json\n');
  const cases: [string[], RegExp][] = [
    [[bad], /bad\.jsonl: line 1 lacks peak_bytes, activation_peak_bytes/],
    [[path.join(dir, 'none.jsonl')], /none\.jsonl: no such run folder or memory file/],
    [[dir], /summary\.json not found/],
    [[], /nothing to report/],
  ];
  for (const [args, message] of cases) {
    const r = sll('report', ...args, '--out', path.join(dir, 'x.html'), '--examples', '0');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, message);
  }
});
