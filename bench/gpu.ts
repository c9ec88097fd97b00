/**
 * npm run bench:gpu [-- --json] [--count] [--cases mlp-sll,mlp-bp] [--engines tfjs-stock,sll-tfjs-matmul,sll] [--batches 128,1024] [--width N] [--steps S] [--warmup W]
 * npm run bench:gpu -- --matmuls [--json] [--batches 128,1024] [--width N] [--steps S] [--warmup W]
 *
 * What one training step costs on the `webgpu` backend, counted at the WebGPU API (src/gpu/counters.ts):
 * compute dispatches, tensor-data uploads, uniform/parameter writes and readbacks per step, and (without
 * --count) milliseconds per step. Cases, built with the library's own code path (buildModel + makeTrainer,
 * steps run by SequentialEngine as training runs them: on webgpu the [units, 4] stats of 16 steps are read
 * together, so a readback comes once per 16 steps, at the logging point):
 *   mlp-sll  one SLL step of the MLP 784-1024x3 (3 local units, K = 10, keep 0.5, lambda 1, Adam 1e-3)
 *   mlp-bp   the same MLP + a linear classifier, end-to-end backprop, Adam
 * (--width N: N units a layer instead of 1024; the counts do not depend on it)
 * at each batch size. The minibatch is uploaded once before the steps (a training run uploads one per
 * step, on top of the counts here). After W warm-up steps (default 2; shader compilation in the first, then
 * the buffer pool and bind groups that the steps need), S steps (default 16) are counted and timed; the
 * counts are per step (totals / S).
 *
 * `engine` names what runs the step: "tfjs-stock" is the step with tfjs's own ops and tf.train.adam on
 * tfjs-backend-webgpu; "sll" is the library as it trains on webgpu (its fused kernels: Adam with a
 * unit's two variables in one dispatch, the unit loss with its stats and gradient in one per unit, the
 * layers with bias and ReLU in one dispatch forward and one backward, the matrix products as our own
 * kernel with the head's mask drawn inside its product: src/gpu/kernels.ts);
 * "sll-tfjs-matmul" is "sll" with tfjs-backend-webgpu's matmul programs instead of ours (and the mask as
 * its own dispatch), to tell on a GPU what each matmul costs. --engines picks them (default all three).
 *
 * The adapter: the GPU that Vulkan's loader finds (VK_DRIVER_FILES names a driver); with none found and
 * no driver named, SwiftShader (Debian's chromium) when present. SwiftShader runs on the CPU: its counts
 * are right, its times mean nothing (--count skips timing: ms_per_step is null).
 *
 * Output: a table on stdout; with --json, one JSON object per row instead:
 * {case, engine, batch, width, adapter, dispatches_per_step, uploads_per_step, uniform_writes_per_step,
 * readbacks_per_step, bind_groups_per_step, read_every, ms_per_step, host_ms_per_step}. Progress goes to
 * stderr.
 *
 * host_ms_per_step is the time per step spent in the step's synchronous part: tfjs, the library and Dawn
 * recording and submitting the step's GPU work (garbage collection included), which the GPU then runs
 * asynchronously; the waits for the stats are not in it. On any card a step can go no faster than this, so
 * it is the part of ms_per_step that can be measured and cut without a GPU (on SwiftShader too, best at a
 * small --width, where the driver's threads take least of the two cores from the main thread).
 *
 * --matmuls times the MLP step's large matrix products on their own instead (what a step's GPU time is mostly
 * made of at batch 1024), each as our kernel (engine "sll", src/gpu/matmul.ts) in each of its tilings
 * (MATMUL_TILINGS) and as tfjs-backend-webgpu's program (engine "tfjs", tiling null), so that a step's time on
 * a card can be told apart into products and the rest, and the fastest tiling found:
 *   forward-in  relu(x [B, 784] W [784, N] + b)      forward  relu(h [B, N] W [N, N] + b)
 *   weights-in  x^T dz: [784, B] times [B, N]          weights  h^T dz: [N, B] times [B, N]
 *   head        a unit's head, h [B, N] (M ⊙ R) [N, 10]: few columns, so few workgroups; ours draws the mask
 *               M (keep 0.5) as it reads R, tfjs's is a product after a dispatch that draws M ⊙ R
 * (N: --width). Each product runs S times in a row (default 16) after W warm-up runs, then one entry of the
 * last is read: ms is the wall time per product, host_ms the time per product spent recording it. Rows:
 * {product, engine, tiling, batch, m, n, k, adapter, ms, host_ms, gflops}. bench/torch_ref.py --matmuls times the
 * same products in PyTorch.
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../src/backend.js';
import { describeAdapter, installWebGpu } from '../src/gpu/webgpu-node.js';
import type { GpuCounters } from '../src/gpu/counters.js';
import { resolveOptions } from '../src/recipe/options.js';
import { buildModel, makeTrainer } from '../src/recipe/run.js';
import { useWebGpuKernels } from '../src/gpu/kernels.js';
import { MATMUL_TILINGS, type MatMulTiling } from '../src/gpu/matmul.js';
import { maskedProduct } from '../src/objectives/projection.js';
import { SequentialEngine, type StepBatch } from '../src/train/engine.js';
import { disposeHeaded } from '../src/train/model.js';
import { benchArgs, intFlag, listFlag } from './args.js';

const CASES = ['mlp-sll', 'mlp-bp'] as const;
type CaseName = (typeof CASES)[number];
const ENGINES = ['tfjs-stock', 'sll-tfjs-matmul', 'sll'] as const;
type Engine = (typeof ENGINES)[number];


/** One row of the bench. */
export interface GpuBenchRow {
  case: CaseName;
  engine: Engine;
  batch: number;
  width: number;
  adapter: string;
  dispatches_per_step: number;
  uploads_per_step: number;
  uniform_writes_per_step: number;
  readbacks_per_step: number;
  /** Bind groups made per step (each costs the host tens of microseconds; ours are made once and found again). */
  bind_groups_per_step: number;
  /** Steps per read of the stats (SequentialEngine on this backend): one readback per that many steps. */
  read_every: number;
  ms_per_step: number | null;
  /** Milliseconds per step in the step's synchronous part, recording its GPU work (see the module's documentation). */
  host_ms_per_step: number;
}

/** One of the MLP step's large matrix products (see --matmuls), timed on one engine. */
export interface GpuMatMulRow {
  product: MatMulName;
  engine: 'sll' | 'tfjs';
  /** Our kernel's tiling (engine sll), else null. */
  tiling: MatMulTiling | null;
  batch: number;
  m: number;
  n: number;
  k: number;
  adapter: string;
  ms: number;
  host_ms: number;
  /** 2 m n k / ms, in GFLOP/s. */
  gflops: number;
}

const MATMULS = ['forward-in', 'forward', 'weights-in', 'weights', 'head'] as const;
type MatMulName = (typeof MATMULS)[number];

/** The operands of product `name` at `batch` and `width` (784 inputs), as the MLP step multiplies them. */
function matMulCase(name: MatMulName, batch: number, width: number): { a: number[]; b: number[]; transposeA: boolean; layer: boolean } {
  const fanIn = name.endsWith('-in') ? 784 : width;
  if (name === 'head') return { a: [batch, width], b: [width, 10], transposeA: false, layer: false };
  return name.startsWith('forward')
    ? { a: [batch, fanIn], b: [fanIn, width], transposeA: false, layer: true }
    : { a: [batch, fanIn], b: [batch, width], transposeA: true, layer: false };
}

/** Times `reps` runs of product `name` after `warmup` (see --matmuls) with the matmul kernels as they are registered now. */
async function timeMatMul(name: MatMulName, batch: number, width: number, reps: number, warmup: number) {
  const c = matMulCase(name, batch, width);
  const a = tf.randomNormal(c.a, 0, 1, 'float32', 1);
  const b = tf.randomNormal(c.b, 0, 1, 'float32', 2);
  const bias = tf.randomNormal([width], 0, 1, 'float32', 3);
  let draws = 0;
  const run = () => {
    if (name === 'head') return maskedProduct(a as tf.Tensor2D, b as tf.Tensor2D, { key: draws++, keep: 0.5, value: 2 });
    return c.layer ? tf.fused.matMul({ a, b, bias, activation: 'relu' }) : tf.matMul(a, b, c.transposeA);
  };
  // Reading one entry of the last product waits for all of them (one queue) without a large copy.
  const finish = async (last: tf.Tensor) => {
    const entry = tf.slice(last, [0, 0], [1, 1]);
    await entry.data();
    tf.dispose([entry, last]);
  };
  for (let i = 0; i < warmup; i++) await finish(run());
  const t0 = performance.now();
  let last = run();
  for (let i = 1; i < reps; i++) {
    last.dispose();
    last = run();
  }
  const host = (performance.now() - t0) / reps;
  const [m, n] = last.shape;
  await finish(last);
  const ms = (performance.now() - t0) / reps;
  tf.dispose([a, b, bias]);
  const k = c.a[c.transposeA ? 0 : 1];
  return { m, n, k, ms: Math.round(ms * 1000) / 1000, host_ms: Math.round(host * 1000) / 1000, gflops: Math.round(((2 * m * n * k) / (ms * 1e6)) * 10) / 10 };
}


/** Counts (and times, unless `count`) `steps` steps of `name` at `batch` after `warmup` steps. */
async function measure(name: CaseName, batch: number, counters: GpuCounters, o: { width: number; steps: number; warmup: number; count: boolean }, log: (s: string) => void) {
  const opts = resolveOptions({ layers: 3, width: o.width, batchSize: batch, cropPadding: 0, method: name === 'mlp-bp' ? 'bp' : 'sll', backend: 'webgpu' });
  const model = buildModel(opts, [28, 28, 1], 10);
  const trainer = makeTrainer(model, opts);
  trainer.setEpoch(0);
  // The host's share: the time inside trainer.step, which records the step's GPU work and returns.
  let hostMs = 0;
  const step = trainer.step.bind(trainer);
  trainer.step = (...args) => {
    const t = performance.now();
    const stats = step(...args);
    hostMs += performance.now() - t;
    return stats;
  };
  const x = tf.randomNormal([batch, 28, 28, 1], 0, 1, 'float32', 1);
  const labels = tf.tensor1d(Int32Array.from({ length: batch }, (_, i) => (i * 7) % 10), 'int32');
  // Steps as training runs them (SequentialEngine): the stats read every `readEvery` steps, not every step.
  const engine = new SequentialEngine(trainer);
  async function* batches(from: number, count: number): AsyncGenerator<StepBatch> {
    // Clones share x's data: the engine disposes each step's batch, no upload is made.
    for (let i = from; i < from + count; i++) yield { step: i, x: tf.clone(x), labels: tf.clone(labels), n: batch };
  }
  const run = (from: number, count: number) => engine.run(batches(from, count), async () => {}, () => true);
  // The first warm-up step alone (it compiles the shaders), the others as the timed ones run, so that the
  // buffer pool holds what they need (a read's worth of stats) and their bind groups are made.
  for (const [from, count] of o.warmup > 0 ? [[0, 1], [1, o.warmup - 1]] : []) {
    if (count === 0) continue;
    const t0 = performance.now();
    await run(from, count);
    log(`warm-up step${count > 1 ? `s ${from + 1}-${from + count}` : ` ${from + 1}`} of ${o.warmup}: ${((performance.now() - t0) / count).toFixed(0)} ms a step`);
  }
  counters.reset();
  hostMs = 0;
  const t0 = performance.now();
  await run(o.warmup, o.steps);
  const ms = (performance.now() - t0) / o.steps;
  const host = hostMs / o.steps;
  const c = counters.read();
  trainer.dispose();
  tf.dispose([x, labels]);
  disposeHeaded(model);
  // Three decimals, so that a count over the S steps can be read back: 1 read in 16 steps is 0.063.
  const per = (n: number) => Math.round((n / o.steps) * 1000) / 1000;
  log(`${o.steps} steps: ${ms.toFixed(0)} ms/step (host ${host.toFixed(1)}), ${per(c.dispatches)} dispatches, ${per(c.uploads)} uploads, ${per(c.uniformWrites)} uniform writes, ${per(c.readbacks)} readbacks, ${per(c.submits)} submits, ${per(c.bindGroups)} bind groups per step`);
  return {
    dispatches_per_step: per(c.dispatches),
    uploads_per_step: per(c.uploads),
    uniform_writes_per_step: per(c.uniformWrites),
    readbacks_per_step: per(c.readbacks),
    bind_groups_per_step: per(c.bindGroups),
    read_every: engine.readEvery,
    ms_per_step: o.count ? null : Math.round(ms * 100) / 100,
    host_ms_per_step: Math.round(host * 100) / 100,
  };
}

async function main(): Promise<void> {
  const { values } = benchArgs(() =>
    parseArgs({
    options: {
      json: { type: 'boolean', default: false },
      count: { type: 'boolean', default: false },
      matmuls: { type: 'boolean', default: false },
      cases: { type: 'string', default: CASES.join(',') },
      engines: { type: 'string', default: ENGINES.join(',') },
      batches: { type: 'string', default: '128,1024' },
      width: { type: 'string', default: '1024' },
      steps: { type: 'string' },
      warmup: { type: 'string', default: '2' },
    },
  }),
  );
  const cases = listFlag('cases', values.cases!, CASES);
  const engines = listFlag('engines', values.engines!, ENGINES);
  const batches = listFlag('batches', values.batches!).map((b) => intFlag('batches', b));
  const width = intFlag('width', values.width);
  const steps = intFlag('steps', values.steps ?? '16');
  const warmup = intFlag('warmup', values.warmup, 0);

  // Counters go on before tfjs-backend-webgpu makes its device, so that every call is seen.
  const { adapter, counters } = await installWebGpu({ swiftShader: true, counters: true });
  await useBackend('webgpu');
  const name = describeAdapter(adapter);
  if (adapter.architecture === 'swiftshader' && !values.count) process.stderr.write(`bench:gpu: SwiftShader runs on the CPU; its times mean nothing${values.matmuls ? '' : ' (use --count)'}\n`);

  if (values.matmuls) {
    if (values.count) throw new Error('--matmuls times products: it has no --count');
    const rows: GpuMatMulRow[] = [];
    for (const batch of batches) {
      for (const product of MATMULS) {
        for (const tiling of [...MATMUL_TILINGS, null]) {
          const engine = tiling ? 'sll' : 'tfjs';
          useWebGpuKernels(true, { matMul: tiling != null, matMulTiling: tiling ?? undefined });
          const row: GpuMatMulRow = { product, engine, tiling, batch, adapter: name, ...(await timeMatMul(product, batch, width, steps, warmup)) };
          process.stderr.write(`[${product} ${tiling ?? engine} B=${batch}] ${row.m}x${row.n}x${row.k}: ${row.ms} ms (host ${row.host_ms}), ${row.gflops} GFLOP/s\n`);
          rows.push(row);
          if (values.json) console.log(JSON.stringify(row));
        }
      }
    }
    if (!values.json) {
      console.log(`adapter: ${name}; width ${width}; per product, after ${warmup} warm-up runs, over ${steps} runs`);
      printTable(
        ['product', 'engine', 'batch', 'm', 'n', 'k', 'ms', 'host ms', 'GFLOP/s'],
        rows.map((r) => [r.product, r.tiling ? `sll ${r.tiling}` : r.engine, String(r.batch), String(r.m), String(r.n), String(r.k), r.ms.toFixed(3), r.host_ms.toFixed(3), r.gflops.toFixed(1)]),
      );
    }
    return;
  }

  const rows: GpuBenchRow[] = [];
  for (const c of cases) {
    for (const batch of batches) {
      for (const engine of engines) {
        useWebGpuKernels(engine !== 'tfjs-stock', { matMul: engine === 'sll' });
        const log = (s: string) => process.stderr.write(`[${c} ${engine} B=${batch}] ${s}\n`);
        const m = await measure(c, batch, counters!, { width, steps, warmup, count: values.count! }, log);
        const row: GpuBenchRow = { case: c, engine, batch, width, adapter: name, ...m };
        rows.push(row);
        if (values.json) console.log(JSON.stringify(row));
      }
    }
  }
  if (values.json) return;
  const header = ['case', 'engine', 'batch', 'dispatches', 'uploads', 'uniform writes', 'readbacks', 'read every', 'bind groups', 'ms/step', 'host ms/step'];
  const ms = (x: number | null) => (x === null ? '-' : x.toFixed(1));
  const count = (x: number) => String(Math.round(x * 10) / 10);
  const table = rows.map((r) => [
    r.case,
    r.engine,
    String(r.batch),
    count(r.dispatches_per_step),
    count(r.uploads_per_step),
    count(r.uniform_writes_per_step),
    count(r.readbacks_per_step),
    String(r.read_every),
    count(r.bind_groups_per_step),
    ms(r.ms_per_step),
    ms(r.host_ms_per_step),
  ]);
  console.log(`adapter: ${name}; width ${width}; per step, after ${warmup} warm-up steps, over ${steps} steps`);
  printTable(header, table);
}

/** A table on stdout: the first two columns left-aligned, the others right-aligned. */
function printTable(header: string[], table: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i].length)));
  const fmt = (r: string[]) => r.map((s, i) => (i < 2 ? s.padEnd(widths[i]) : s.padStart(widths[i]))).join('  ');
  [header, ...table].forEach((r) => console.log(fmt(r)));
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
