/**
 * The browser page (web/, `npm run web`): built with Vite's API, served over HTTP, driven in headless
 * Chromium. It trains SLL live on MNIST, its drawing pad answers per head, and it reads and writes the
 * four files of `sll train` (a CLI run scores on the page what `sll evaluate` prints).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const CHROMIUM = '/usr/bin/chromium';
// The README's picture is this test's screenshot: SLL_SCREENSHOT_DIR=docs/img writes it there; by default
// it goes to a temporary folder (so that a test run leaves the checkout as it was).
const SCREENSHOT = path.join(process.env.SLL_SCREENSHOT_DIR ?? fs.mkdtempSync(path.join(os.tmpdir(), 'sll-web-shot-')), 'web-page.png');
const TEST_IMAGES = 500;

/** What the test reads of window.sllPage.state (web/main.ts). */
interface PageState {
  backend: string;
  status: string;
  message: string;
  runs: Record<string, { epochs: Record<string, number>[]; unitTestAccuracy: number[]; testAccuracy: number | null; trainSeconds: number }>;
  loaded: { name: string; units: number; testAccuracy: number; unitTestAccuracy: number[]; testExamples: number } | null;
  pad: { model: string | null; heads: string[]; predictions: number[][] | null };
  memory: { bytes: number; peakBytes: number };
  errors: string[];
}

const pageState = (page: Page) => page.evaluate(() => (window as unknown as { sllPage: { state: PageState } }).sllPage.state);

function sll(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.wasm': 'application/wasm', '.json': 'application/json' };

/** A static server of `dir`, cross-origin isolated as `npm run web` serves the page (wasm threads). */
async function serve(dir: string): Promise<{ url: string; server: http.Server }> {
  const server = http.createServer((req, res) => {
    const rel = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = path.join(dir, path.normalize(rel.endsWith('/') ? `${rel}index.html` : rel));
    if (!file.startsWith(dir) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, {
      'Content-Type': TYPES[path.extname(file)] ?? 'application/octet-stream',
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
    });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, server };
}

const hasChromium = fs.existsSync(CHROMIUM);
const skip = hasChromium ? false : `no ${CHROMIUM} (apt-get install chromium; .ci/run does)`;
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sll-web-'));
const site = path.join(work, 'site');
let browser: Browser;
let page: Page;
let server: http.Server;
/** Where the built page is served. */
let siteUrl: string;
const errors: string[] = [];

before(async () => {
  if (!hasChromium) return;
  const { build } = await import('vite');
  await build({ configFile: path.join(root, 'web', 'vite.config.ts'), logLevel: 'error', build: { outDir: site, emptyOutDir: true, minify: false } });
  ({ url: siteUrl, server } = await serve(site));
  const url = siteUrl;
  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader', '--use-angle=swiftshader'],
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 }, acceptDownloads: true });
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(String(e)));
  // Offline: the page asks only its own origin.
  await page.route('**/*', (route) => (route.request().url().startsWith(url) ? route.continue() : (errors.push(`request ${route.request().url()}`), route.abort())));
  const settings = new URLSearchParams({ backend: 'wasm', method: 'sll', layers: '2', width: '128', epochs: '3', train: '6000', test: String(TEST_IMAGES), lr: '0.002', batch: '64', seed: '0' });
  await page.goto(`${url}?${settings}`);
  await page.waitForFunction(() => (window as unknown as { sllPage?: { state: PageState } }).sllPage?.state.status === 'idle', null, { timeout: 60_000 });
});

after(async () => {
  await browser?.close();
  server?.close();
});

test('the page trains an SLL MLP on 6000 MNIST images in Chromium (wasm): > 80% test accuracy, every head charted, memory tracked', { skip }, async () => {
  // An emptied field is refused (Number('') would be 0), and the next start clears the message.
  const lambda = await page.inputValue('#lambda');
  await page.fill('#lambda', '');
  await page.click('#start');
  assert.deepEqual((await pageState(page)).errors, ['settings: lambda is empty']);
  await page.fill('#lambda', lambda);
  const started = Date.now();
  await page.click('#start');
  await page.waitForFunction(() => (window as unknown as { sllPage: { state: PageState } }).sllPage.state.status !== 'training', null, { timeout: 120_000, polling: 500 });
  const state = await pageState(page);
  assert.equal(state.status, 'idle', `${state.message} ${state.errors.join('\n')}`);
  assert.deepEqual(state.errors, []);
  // The refused start's console.error.
  errors.splice(0, errors.length, ...errors.filter((e) => !e.includes('lambda is empty')));
  assert.equal(state.backend, 'wasm');
  const run = state.runs.sll;
  assert.equal(run.epochs.length, 3);
  assert.ok(run.testAccuracy! > 0.8, `test accuracy ${run.testAccuracy} after ${(Date.now() - started) / 1000} s`);
  assert.equal(run.unitTestAccuracy.length, 2);
  for (const logs of run.epochs) for (const k of ['unit1_acc', 'unit2_val_acc', 'unit1_pred_loss', 'unit2_align_loss']) assert.ok(Number.isFinite(logs[k]), k);
  assert.ok(state.memory.peakBytes >= state.memory.bytes && state.memory.peakBytes > 0, JSON.stringify(state.memory));
  // Accuracy: 2 heads x train/test; loss: 2 heads x 2 parts; memory: one line.
  const lines = await page.$$eval('#charts svg', (svgs) => svgs.map((s) => s.querySelectorAll('path[class*="mark-line"], g.mark-line path').length));
  assert.deepEqual(lines.slice(0, 2).map((n) => n >= 4), [true, true], `chart lines ${lines}`);
  assert.deepEqual(errors, []);
  console.log(`page SLL 2x128, 6000 images, 3 epochs: test accuracy ${run.testAccuracy} (heads ${run.unitTestAccuracy}), ${run.trainSeconds.toFixed(1)} s of steps, ${(Date.now() - started) / 1000} s in all`);
});

/** Draws one stroke through `points` (in the pad's 280x280 pixels) with the mouse. */
async function stroke(points: [number, number][]): Promise<void> {
  await page.locator('#pad').scrollIntoViewIfNeeded();
  const box = (await page.locator('#pad').boundingBox())!;
  await page.mouse.move(box.x + points[0][0], box.y + points[0][1]);
  await page.mouse.down();
  for (const [x, y] of points.slice(1)) await page.mouse.move(box.x + x, box.y + y, { steps: 8 });
  await page.mouse.up();
}

test('the drawing pad answers a drawn stroke with every head\'s class probabilities (a vertical stroke reads as a 1)', { skip }, async () => {
  await stroke([[140, 40], [140, 240]]);
  await page.waitForFunction(() => (window as unknown as { sllPage: { state: PageState } }).sllPage.state.pad.predictions !== null, null, { timeout: 5000 });
  const { pad } = await pageState(page);
  assert.equal(pad.model, 'sll');
  assert.deepEqual(pad.heads, ['head 1', 'head 2']);
  for (const p of pad.predictions!) {
    assert.equal(p.length, 10);
    assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-4, `${p}`);
  }
  assert.equal(await page.locator('#bars .head').count(), 2);
  assert.equal(await page.locator('#bars .head .bar').count(), 20);
  const last = pad.predictions![1];
  assert.equal(last.indexOf(Math.max(...last)), 1, `the last head reads ${last.map((v) => v.toFixed(2))}`);
  assert.deepEqual(errors, []);
});

test('the page\'s model downloads as the four files of sll train, which load back with the same test accuracy', { skip }, async () => {
  const downloads = path.join(work, 'downloaded');
  fs.mkdirSync(downloads);
  const names: string[] = [];
  page.on('download', async (d) => {
    names.push(d.suggestedFilename());
    await d.saveAs(path.join(downloads, d.suggestedFilename()));
  });
  await page.click('#download');
  const wanted = ['heads.bin', 'model.json', 'sll.json', 'weights.bin'];
  for (let i = 0; i < 100 && wanted.some((f) => !fs.existsSync(path.join(downloads, f))); i++) await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(names.sort(), wanted);
  await page.setInputFiles('#model-files', wanted.map((f) => path.join(downloads, f)));
  await page.waitForFunction(() => (window as unknown as { sllPage: { state: PageState } }).sllPage.state.loaded !== null);
  const state = await pageState(page);
  assert.equal(state.loaded!.testAccuracy, state.runs.sll.testAccuracy);
  assert.deepEqual(state.loaded!.unitTestAccuracy, state.runs.sll.unitTestAccuracy);
  assert.deepEqual(errors, []);
});

test('a model trained by the CLI loads from its four files; its last head scores sll evaluate\'s test accuracy on the same test images', { skip }, async () => {
  const run = path.join(work, 'cli-run');
  const options = ['--layers', '2', '--width', '64', '--epochs', '2', '--batch-size', '32', '--lr', '0.003', '--crop-padding', '0'];
  sll('train', '--backend', 'cpu', ...options, '--train-limit', '2000', '--test-limit', String(TEST_IMAGES), '--out', run);
  const evaluation = JSON.parse(sll('evaluate', '--model-dir', run).trim().split('\n').pop()!);
  assert.equal(evaluation.test_examples, TEST_IMAGES);
  await page.evaluate(() => ((window as unknown as { sllPage: { state: PageState } }).sllPage.state.loaded = null));
  await page.setInputFiles('#model-files', ['model.json', 'weights.bin', 'sll.json', 'heads.bin'].map((f) => path.join(run, f)));
  await page.waitForFunction(() => (window as unknown as { sllPage: { state: PageState } }).sllPage.state.loaded !== null);
  const { loaded, pad } = await pageState(page);
  assert.equal(loaded!.testExamples, TEST_IMAGES);
  // The CLI evaluated on the cpu backend, the page on wasm: float rounding may flip one borderline example.
  assert.ok(Math.abs(loaded!.testAccuracy - evaluation.test_accuracy) <= 1 / TEST_IMAGES + 1e-9, `page ${loaded!.testAccuracy}, CLI ${evaluation.test_accuracy}`);
  assert.equal(pad.model, 'loaded');
  assert.equal(pad.predictions?.length, 2, 'the pad answers with the loaded model\'s heads');
  // The same run from a URL (its folder served beside the page).
  fs.cpSync(run, path.join(site, 'cli-run'), { recursive: true });
  await page.evaluate(() => ((window as unknown as { sllPage: { state: PageState } }).sllPage.state.loaded = null));
  await page.fill('#model-url', 'cli-run');
  await page.click('#load-url');
  await page.waitForFunction(() => (window as unknown as { sllPage: { state: PageState } }).sllPage.state.loaded !== null);
  const fromUrl = (await pageState(page)).loaded!;
  assert.match(fromUrl.name, /\/cli-run\/$/);
  assert.equal(fromUrl.testAccuracy, loaded!.testAccuracy);
  assert.deepEqual(errors, []);
  console.log(`CLI model: page ${loaded!.testAccuracy}, sll evaluate ${evaluation.test_accuracy}`);
});

test('BP trains beside SLL: its accuracy and loss join the same charts, the table lists both', { skip }, async () => {
  await page.selectOption('#method', 'bp');
  await page.fill('#epochs', '2');
  await page.click('#start');
  await page.waitForFunction(() => (window as unknown as { sllPage: { state: PageState } }).sllPage.state.status !== 'training', null, { timeout: 120_000, polling: 500 });
  const state = await pageState(page);
  assert.equal(state.status, 'idle', `${state.message} ${state.errors.join('\n')}`);
  assert.ok(state.runs.bp.testAccuracy! > 0.8, `BP test accuracy ${state.runs.bp.testAccuracy}`);
  assert.equal(state.runs.sll.epochs.length, 3, 'the SLL run stays');
  const legend = await page.locator('#chart-accuracy').textContent();
  assert.match(legend!, /BP.*SLL unit 1.*SLL unit 2/s);
  assert.equal(await page.locator('#results tr').count(), 3);
  assert.deepEqual(errors, []);
  // The picture for the README: the page's own SLL model reading a drawn 7.
  await page.selectOption('#pad-model', 'sll');
  await page.click('#clear');
  await stroke([[60, 50], [220, 50], [110, 240]]);
  await page.waitForFunction(() => (window as unknown as { sllPage: { state: PageState } }).sllPage.state.pad.predictions !== null);
  fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  assert.ok(fs.statSync(SCREENSHOT).size > 50_000, `screenshot ${SCREENSHOT}`);
  console.log(`screenshot: ${SCREENSHOT}`);
  console.log(`BP 2 epochs: test accuracy ${state.runs.bp.testAccuracy}, ${state.runs.bp.trainSeconds.toFixed(1)} s of steps`);
});

test('stop ends a run between steps; restart stops it and trains again from scratch', { skip }, async () => {
  const progress = () => page.evaluate(() => (window as unknown as { sllPage: { state: { progress: { epoch: number; batch: number } | null } } }).sllPage.state.progress);
  const training = () => page.waitForFunction(() => ((window as unknown as { sllPage: { state: { progress: { batch: number } | null } } }).sllPage.state.progress?.batch ?? 0) > 3);
  await page.selectOption('#method', 'sll');
  await page.fill('#epochs', '50');
  await page.click('#start');
  await training();
  await page.click('#restart');
  await page.waitForFunction(() => (window as unknown as { sllPage: { state: PageState } }).sllPage.state.runs.bp === undefined);
  await training();
  assert.equal((await progress())!.epoch, 1, 'the restarted run begins at epoch 1');
  await page.click('#stop');
  await page.waitForFunction(() => (window as unknown as { sllPage: { state: PageState } }).sllPage.state.status === 'idle', null, { timeout: 10_000 });
  const state = await pageState(page);
  assert.equal(state.message, 'stopped');
  assert.ok(state.runs.sll.epochs.length < 50);
  assert.deepEqual(errors, []);
});

test("the page trains on WebGPU (Chromium's SwiftShader) through the library's fused kernels to wasm's test accuracy", { skip }, async () => {
  const accuracy = async (backend: 'webgpu' | 'wasm') => {
    const p = await browser.newPage();
    const pageErrors: string[] = [];
    p.on('console', (m) => m.type() === 'error' && pageErrors.push(m.text()));
    p.on('pageerror', (e) => pageErrors.push(String(e)));
    const settings = new URLSearchParams({ backend, method: 'sll', layers: '2', width: '64', epochs: '2', train: '1280', test: String(TEST_IMAGES), lr: '0.01', batch: '64', seed: '0' });
    await p.goto(`${siteUrl}?${settings}`);
    await p.waitForFunction(() => (window as unknown as { sllPage?: { state: PageState } }).sllPage?.state.status === 'idle', null, { timeout: 60_000 });
    await p.click('#start');
    await p.waitForFunction(() => (window as unknown as { sllPage: { state: PageState } }).sllPage.state.status !== 'training', null, { timeout: 180_000, polling: 500 });
    const state = await pageState(p);
    await p.close();
    assert.equal(state.status, 'idle', `${backend}: ${state.message} ${state.errors.join('\n')}`);
    assert.equal(state.backend, backend);
    assert.deepEqual(pageErrors, [], backend);
    return state.runs.sll.testAccuracy!;
  };
  const gpu = await accuracy('webgpu');
  const wasm = await accuracy('wasm');
  console.log(`page SLL 2x64, 1280 images, 2 epochs: test accuracy ${gpu} on webgpu, ${wasm} on wasm`);
  assert.ok(gpu > 0.4, `webgpu: test accuracy ${gpu}`);
  assert.ok(Math.abs(gpu - wasm) <= 0.02, `webgpu ${gpu} against wasm ${wasm}`);
});
