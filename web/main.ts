/**
 * The page: SLL (or BP) training an MLP on MNIST live, with the library's browser-safe core (`sll`):
 * `fitSll` / `fitBp` train a tf.sequential from the core's image data sets, tfjs callbacks feed the
 * charts, `predict` answers the drawing pad per head, `toArtifacts` / `fromArtifacts` save and load the
 * same four files as `sll train`. `window.sllPage` exposes the state for tests.
 */
import * as tf from '@tensorflow/tfjs';
import {
  disposeHeaded,
  evaluate,
  fitBp,
  fitSll,
  fromArtifacts,
  predict,
  subset,
  toArtifacts,
  type DataSplits,
  type FitHistory,
  type HeadedNetwork,
  type InMemoryDataset,
} from '../src/index.js';
import { PAGE_BACKENDS, selectBackend, type PageBackend } from './backend.js';
import { createCharts, type AccuracyRow, type LossRow, type MemoryRow } from './charts.js';
import { loadMnist } from './data.js';
import { artifactsFromFiles, fetchModelFiles, filesFromArtifacts } from './model-files.js';
import { DrawingPad, showImage } from './pad.js';

type Method = 'sll' | 'bp';
type ModelName = Method | 'loaded';

/** What a run trains: the settings form. */
interface Settings {
  method: Method | 'both';
  layers: number;
  width: number;
  lambda: number;
  keep: number;
  lr: number;
  batchSize: number;
  epochs: number;
  trainSize: number;
  testSize: number;
  seed: number;
}

/** One method's run: its epoch logs (the callbacks' `logs`) and its final test accuracies. */
interface RunRecord {
  method: Method;
  settings: Settings;
  epochs: Record<string, number>[];
  /** Per head (SLL) or the classifier (BP), on the test images, after the last epoch. */
  unitTestAccuracy: number[];
  testAccuracy: number | null;
  trainSeconds: number;
  stopped: boolean;
}

/** A model loaded from files: its heads' test accuracies on the test images of the settings. */
interface LoadedRecord {
  name: string;
  units: number;
  method: Method;
  testAccuracy: number;
  unitTestAccuracy: number[];
  testExamples: number;
}

/** Everything the page shows, as plain data (read by tests through window.sllPage.state). */
const state = {
  backend: '' as string,
  status: 'starting' as 'starting' | 'idle' | 'loading data' | 'training' | 'error',
  message: '',
  progress: null as { method: Method; epoch: number; epochs: number; batch: number; batches: number | null } | null,
  runs: {} as Partial<Record<Method, RunRecord>>,
  loaded: null as LoadedRecord | null,
  pad: { model: null as ModelName | null, heads: [] as string[], predictions: null as number[][] | null },
  memory: { bytes: 0, peakBytes: 0 },
  errors: [] as string[],
};

const models = new Map<ModelName, HeadedNetwork>();
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);
const t0 = performance.now();
const memoryRows: MemoryRow[] = [];
let charts: ReturnType<typeof createCharts> | null = null;
let mnist: Promise<DataSplits<InMemoryDataset>> | null = null;
let running: Promise<void> | null = null;
let stopRequested = false;

function fail(where: string, e: unknown): void {
  const message = `${where}: ${e instanceof Error ? e.message : String(e)}`;
  state.errors.push(message);
  const el = $('errors');
  el.hidden = false;
  el.textContent = state.errors.join('\n');
  console.error(message);
}

/** A new attempt starts with no error showing. */
function clearErrors(): void {
  state.errors = [];
  $('errors').hidden = true;
  $('errors').textContent = '';
}

function setStatus(status: typeof state.status, message: string): void {
  Object.assign(state, { status, message });
  $('status').textContent = message;
  const busy = status === 'training' || status === 'loading data';
  ($('start') as HTMLButtonElement).disabled = busy;
  ($('stop') as HTMLButtonElement).disabled = !busy;
  ($('restart') as HTMLButtonElement).disabled = !busy;
  ($('backend') as HTMLSelectElement).disabled = busy;
}

const pct = (v: number | null | undefined) => (v == null ? '–' : `${(100 * v).toFixed(2)}%`);

// ---- settings -----------------------------------------------------------------------------------

const FIELDS: [keyof Settings, string][] = [
  ['layers', 'layers'],
  ['width', 'width'],
  ['lambda', 'lambda'],
  ['keep', 'keep'],
  ['lr', 'lr'],
  ['batchSize', 'batch'],
  ['epochs', 'epochs'],
  ['trainSize', 'train'],
  ['testSize', 'test'],
  ['seed', 'seed'],
];

/** URL parameters (?backend=wasm&layers=2&train=5000...) preset the form. */
function presetFromUrl(): void {
  for (const id of ['backend', 'method', ...FIELDS.map(([, id]) => id)]) {
    const v = params.get(id);
    if (v === null) continue;
    const el = $<HTMLInputElement | HTMLSelectElement>(id);
    if (el instanceof HTMLSelectElement && ![...el.options].some((o) => o.value === v)) el.add(new Option(v, v));
    el.value = v;
  }
}

function readSettings(): Settings {
  const s = { method: $<HTMLSelectElement>('method').value as Settings['method'] } as Settings;
  const check = (ok: boolean, what: string) => {
    if (!ok) throw new Error(what);
  };
  for (const [key, id] of FIELDS) {
    // Number('') is 0: an emptied field would train at 0 rather than say so.
    const raw = $<HTMLInputElement>(id).value.trim();
    check(raw !== '', `${key} is empty`);
    (s[key] as number) = Number(raw);
  }
  for (const key of ['layers', 'width', 'batchSize', 'epochs', 'trainSize', 'testSize'] as const) {
    check(Number.isInteger(s[key]) && s[key] >= 1, `${key} must be a positive integer, got ${s[key]}`);
  }
  check(Number.isInteger(s.seed) && s.seed >= 0, `seed must be an integer >= 0, got ${s.seed}`);
  check(s.lambda >= 0, `lambda must be >= 0, got ${s.lambda}`);
  check(s.keep > 0 && s.keep <= 1, `keep must be in (0, 1], got ${s.keep}`);
  check(s.lr > 0, `lr must be > 0, got ${s.lr}`);
  return s;
}

// ---- training -----------------------------------------------------------------------------------

function data(): Promise<DataSplits<InMemoryDataset>> {
  // A failed load is not kept: the next Start tries again.
  mnist ??= loadMnist(new URL('mnist/', document.baseURI)).catch((e: unknown) => {
    mnist = null;
    throw e;
  });
  return mnist;
}

/** The test images of the settings: the same seeded subset as `sll train --test-limit N --seed S` evaluates on. */
async function testSet(s: Settings): Promise<InMemoryDataset> {
  return subset((await data()).test, s.testSize, s.seed + 1);
}

/** An MLP as `sll train --model mlp` builds it: flatten, then `layers` dense ReLU layers of `width`, He-initialised. */
function mlp(s: Settings): tf.Sequential {
  const layers: tf.layers.Layer[] = [tf.layers.flatten({ inputShape: [28, 28, 1] })];
  for (let i = 0; i < s.layers; i++) {
    layers.push(tf.layers.dense({ units: s.width, activation: 'relu', kernelInitializer: tf.initializers.heUniform({ seed: s.seed * 1000 + i }) }));
  }
  return tf.sequential({ layers });
}

function sampleMemory(): void {
  const bytes = tf.memory().numBytes;
  state.memory = { bytes, peakBytes: Math.max(state.memory.peakBytes, bytes) };
  memoryRows.push({ t: (performance.now() - t0) / 1000, mb: bytes / 2 ** 20 });
  if (memoryRows.length > 2000) memoryRows.splice(0, memoryRows.length - 2000);
}

/** Feeds the page from fitSll's / fitBp's tfjs callbacks; stops the fit when asked (tfjs's `model.stopTraining`). */
class PageCallback extends tf.Callback {
  constructor(
    private readonly run: RunRecord,
    private readonly batches: number,
  ) {
    super();
  }

  override async onBatchEnd(batch: number): Promise<void> {
    state.progress = { method: this.run.method, epoch: this.run.epochs.length + 1, epochs: this.run.settings.epochs, batch: batch + 1, batches: this.batches };
    if (batch % 5 === 0) {
      sampleMemory();
      $('status').textContent = `${this.run.method.toUpperCase()}: epoch ${state.progress.epoch}/${state.progress.epochs}, batch ${batch + 1}/${this.batches}`;
    }
    if (stopRequested) this.model.stopTraining = true;
  }

  override async onEpochEnd(_epoch: number, logs?: tf.Logs): Promise<void> {
    this.run.epochs.push({ ...logs });
    sampleMemory();
    await redraw();
  }
}

async function train(method: Method, s: Settings): Promise<void> {
  const { train: all } = await data();
  const trainSet = subset(all, s.trainSize, s.seed);
  const test = await testSet(s);
  const run: RunRecord = { method, settings: s, epochs: [], unitTestAccuracy: [], testAccuracy: null, trainSeconds: 0, stopped: false };
  state.runs[method] = run;
  setStatus('training', `${method.toUpperCase()}: starting`);
  const callbacks = new PageCallback(run, Math.ceil(trainSet.size / s.batchSize));
  const loop = { epochs: s.epochs, batchSize: s.batchSize, lr: s.lr, seed: s.seed, validationData: test, callbacks };
  const model = mlp(s);
  let history: FitHistory;
  try {
    history = method === 'sll' ? await fitSll(model, trainSet, { ...loop, lambda: s.lambda, keep: s.keep }) : await fitBp(model, trainSet, loop);
  } catch (e) {
    model.dispose();
    throw e;
  }
  Object.assign(run, {
    unitTestAccuracy: history.evaluation?.unitAccuracy ?? [],
    testAccuracy: history.evaluation?.accuracy ?? null,
    trainSeconds: history.trainSeconds,
    stopped: stopRequested,
  });
  const old = models.get(method);
  models.set(method, history.model);
  if (old) disposeHeaded(old);
  usePadModel(method);
}

async function start(): Promise<void> {
  if (running) return;
  let s: Settings;
  clearErrors();
  try {
    s = readSettings();
  } catch (e) {
    fail('settings', e);
    return;
  }
  stopRequested = false;
  running = (async () => {
    try {
      setStatus('loading data', 'loading MNIST…');
      await data();
      for (const method of s.method === 'both' ? (['sll', 'bp'] as const) : [s.method]) {
        if (stopRequested) break;
        await train(method, s);
      }
      state.progress = null;
      setStatus('idle', stopRequested ? 'stopped' : 'done');
    } catch (e) {
      setStatus('error', 'training failed');
      fail('training', e);
    } finally {
      running = null;
      sampleMemory();
      await redraw();
    }
  })();
  await running;
}

async function stop(): Promise<void> {
  stopRequested = true;
  await running;
}

async function restart(): Promise<void> {
  await stop();
  state.runs = {};
  await redraw();
  await start();
}

// ---- charts and results -------------------------------------------------------------------------

function accuracyRows(): AccuracyRow[] {
  const rows: AccuracyRow[] = [];
  for (const run of Object.values(state.runs)) {
    run.epochs.forEach((logs, e) => {
      const add = (series: string, train: number | undefined, test: number | undefined) => {
        if (train !== undefined) rows.push({ series, split: 'train', epoch: e + 1, accuracy: train });
        if (test !== undefined) rows.push({ series, split: 'test', epoch: e + 1, accuracy: test });
      };
      if (run.method === 'bp') add('BP', logs.acc, logs.val_acc);
      else for (let u = 1; `unit${u}_acc` in logs; u++) add(`SLL unit ${u}`, logs[`unit${u}_acc`], logs[`unit${u}_val_acc`]);
    });
  }
  return rows;
}

function lossRows(): LossRow[] {
  const rows: LossRow[] = [];
  for (const run of Object.values(state.runs)) {
    run.epochs.forEach((logs, e) => {
      if (run.method === 'bp') rows.push({ series: 'BP', part: 'prediction', epoch: e + 1, loss: logs.loss });
      for (let u = 1; run.method === 'sll' && `unit${u}_pred_loss` in logs; u++) {
        rows.push({ series: `SLL unit ${u}`, part: 'prediction', epoch: e + 1, loss: logs[`unit${u}_pred_loss`] });
        rows.push({ series: `SLL unit ${u}`, part: 'alignment', epoch: e + 1, loss: logs[`unit${u}_align_loss`] });
      }
    });
  }
  return rows;
}

function showResults(): void {
  const runs = Object.values(state.runs);
  const units = Math.max(0, ...runs.map((r) => (r.method === 'sll' ? r.settings.layers : 0)));
  const head = `<tr><th>method</th><th>epochs</th><th>test accuracy</th>${Array.from({ length: units }, (_, u) => `<th>head ${u + 1}</th>`).join('')}<th>steps</th></tr>`;
  const rows = runs.map((r) => {
    const last = r.epochs[r.epochs.length - 1];
    const heads = Array.from({ length: units }, (_, u) => `<td>${r.method === 'sll' ? pct(r.unitTestAccuracy[u] ?? last?.[`unit${u + 1}_val_acc`]) : ''}</td>`).join('');
    return `<tr><td>${r.method.toUpperCase()}</td><td>${r.epochs.length}</td><td>${pct(r.testAccuracy ?? last?.val_acc)}</td>${heads}<td>${r.trainSeconds ? `${r.trainSeconds.toFixed(1)} s` : ''}</td></tr>`;
  });
  $('results').innerHTML = runs.length ? head + rows.join('') : '';
}

async function redraw(): Promise<void> {
  showResults();
  if (!charts) return;
  await Promise.all([charts.accuracy.set(accuracyRows()), charts.loss.set(lossRows()), charts.memory.set(memoryRows.slice())]);
}

function showMemory(): void {
  if (running) sampleMemory();
  const mb = (b: number) => (b / 2 ** 20).toFixed(1);
  $('memory').textContent = `tf.memory(): in use ${mb(state.memory.bytes)} MB, peak ${mb(state.memory.peakBytes)} MB`;
  void charts?.memory.set(memoryRows.slice());
}

// ---- the drawing pad ----------------------------------------------------------------------------

let pad: DrawingPad;

/** Class probabilities per head of `model` for one 28x28 image of raw 0..255 pixels, normalised as in training. */
async function predictHeads(model: HeadedNetwork, pixels: ArrayLike<number>): Promise<number[][]> {
  const { inputShape } = model.network.spec;
  if (inputShape.reduce((a, b) => a * b, 1) !== 784) throw new Error(`the pad draws 28x28 images; this model takes [${inputShape}]`);
  const n = model.normalization;
  const x = tf.tidy(() => {
    const raw = tf.tensor(Float32Array.from(pixels), [1, ...inputShape]).div(255);
    return n ? raw.sub(n.mean[0]).div(n.std[0]) : raw;
  });
  try {
    const heads = model.network.classifier ? 1 : model.network.units.length;
    const probabilities = tf.tidy(() => tf.concat(Array.from({ length: heads }, (_, i) => predict(model, x, { head: model.network.classifier ? undefined : i }))));
    const values = (await probabilities.array()) as number[][];
    probabilities.dispose();
    return values;
  } finally {
    x.dispose();
  }
}

function headNames(model: HeadedNetwork): string[] {
  return model.network.classifier ? ['classifier'] : model.network.units.map((_, i) => `head ${i + 1}`);
}

function showBars(names: string[], predictions: number[][] | null): void {
  $('bars').innerHTML = (predictions ?? [])
    .map((p, h) => {
      const top = p.indexOf(Math.max(...p));
      const bars = p.map((v, k) => `<div class="bar${k === top ? ' top' : ''}" title="${k}: ${(100 * v).toFixed(1)}%"><div style="height:${(100 * v).toFixed(1)}%"></div><span>${k}</span></div>`);
      return `<div class="head" data-head="${h}"><span class="name">${names[h]}</span>${bars.join('')}</div>`;
    })
    .join('');
}

let padQuery = 0;

async function updatePad(): Promise<void> {
  const query = ++padQuery;
  const image = pad.image();
  showImage($('pad-input'), image);
  const model = state.pad.model ? models.get(state.pad.model) : undefined;
  if (!image || !model) {
    state.pad.predictions = null;
    showBars([], null);
    return;
  }
  try {
    const predictions = await predictHeads(model, image);
    if (query !== padQuery) return;
    state.pad.heads = headNames(model);
    state.pad.predictions = predictions;
    showBars(state.pad.heads, predictions);
  } catch (e) {
    fail('drawing pad', e);
  }
}

const MODEL_LABELS: Record<ModelName, string> = { sll: 'trained here: SLL', bp: 'trained here: BP', loaded: 'loaded' };

function usePadModel(name: ModelName): void {
  const select = $<HTMLSelectElement>('pad-model');
  select.innerHTML = [...models.keys()].map((k) => `<option value="${k}">${MODEL_LABELS[k]}${k === 'loaded' ? `: ${state.loaded?.name ?? ''}` : ''}</option>`).join('');
  select.value = name;
  state.pad.model = name;
  ($('download') as HTMLButtonElement).disabled = false;
  void updatePad();
}

// ---- models as files ----------------------------------------------------------------------------

async function loadModel(name: string, files: Map<string, ArrayBuffer>): Promise<void> {
  try {
    const model = await fromArtifacts(artifactsFromFiles(files));
    const old = models.get('loaded');
    models.set('loaded', model);
    if (old) disposeHeaded(old);
    $('loaded').textContent = `${name}: evaluating…`;
    const s = readSettings();
    const test = await testSet(s);
    const result = await evaluate(model, test);
    const bp = model.network.classifier != null;
    state.loaded = { name, units: model.network.units.length, method: bp ? 'bp' : 'sll', testAccuracy: result.accuracy, unitTestAccuracy: result.unitAccuracy, testExamples: test.size };
    const heads = bp ? '' : ` (heads: ${result.unitAccuracy.map(pct).join(' / ')})`;
    $('loaded').textContent = `${name}: ${model.network.units.length} units (${bp ? 'BP' : 'SLL'}), last head's test accuracy ${pct(result.accuracy)} on ${test.size} MNIST test images${heads}`;
    usePadModel('loaded');
  } catch (e) {
    $('loaded').textContent = `could not load ${name}`;
    fail('loading a model', e);
  }
}

async function download(): Promise<void> {
  const model = state.pad.model ? models.get(state.pad.model) : undefined;
  if (!model) return;
  for (const [name, blob] of filesFromArtifacts(await toArtifacts(model))) {
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = name;
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  }
}

// ---- wiring -------------------------------------------------------------------------------------

async function switchBackend(wanted: string): Promise<void> {
  state.backend = await selectBackend(wanted as PageBackend | 'auto');
  $('backend-name').textContent = `in use: ${state.backend}`;
}

async function init(): Promise<void> {
  presetFromUrl();
  const requested = $<HTMLSelectElement>('backend').value;
  if (requested !== 'auto' && !(PAGE_BACKENDS as readonly string[]).includes(requested)) throw new Error(`unknown backend ${requested}`);
  await switchBackend(requested);
  charts = createCharts({ accuracy: $('chart-accuracy'), loss: $('chart-loss'), memory: $('chart-memory') });
  pad = new DrawingPad($('pad'), () => void updatePad());
  $('clear').addEventListener('click', () => (pad.clear(), void updatePad()));
  $('pad-model').addEventListener('change', (e) => usePadModel((e.target as HTMLSelectElement).value as ModelName));
  $('start').addEventListener('click', () => void start());
  $('stop').addEventListener('click', () => void stop());
  $('restart').addEventListener('click', () => void restart());
  $('backend').addEventListener('change', (e) => void switchBackend((e.target as HTMLSelectElement).value).catch((err) => fail('backend', err)));
  $('download').addEventListener('click', () => void download().catch((e) => fail('download', e)));
  $('model-files').addEventListener('change', async (e) => {
    const list = [...((e.target as HTMLInputElement).files ?? [])];
    const files = new Map(await Promise.all(list.map(async (f) => [f.name, await f.arrayBuffer()] as const)));
    await loadModel(list.map((f) => f.name).join(', '), files);
  });
  $('load-url').addEventListener('click', async () => {
    const url = $<HTMLInputElement>('model-url').value.trim();
    if (!url) return;
    const base = new URL(url.endsWith('/') ? url : `${url}/`, document.baseURI);
    try {
      await loadModel(base.href, await fetchModelFiles(base));
    } catch (e) {
      fail('loading a model', e);
    }
  });
  setInterval(showMemory, 500);
  setStatus('loading data', 'loading MNIST…');
  await data();
  setStatus('idle', 'ready: MNIST loaded');
}

window.addEventListener('unhandledrejection', (e) => fail('unhandled', e.reason));
const ready = init().catch((e) => {
  setStatus('error', 'the page failed to start');
  fail('start', e);
});

/** The testing hook: the page's state and its actions, without scraping the DOM. */
const hook = {
  state,
  ready,
  start,
  stop,
  restart,
  /** Every head's class probabilities for 784 raw pixels, from a model of the page. */
  predict: (pixels: number[], model: ModelName) => {
    const m = models.get(model);
    if (!m) throw new Error(`no model '${model}'`);
    return predictHeads(m, pixels);
  },
};
declare global {
  interface Window {
    sllPage: typeof hook;
  }
}
window.sllPage = hook;
