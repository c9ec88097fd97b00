/**
 * One measurement of `npm run bench:speed`: times training steps of one case on one tfjs engine, in a
 * process of its own so that the engine's thread settings start clean. Run by bench/speed.ts; by hand:
 *
 *   node dist/bench/speed-step.js --case mlp-sll|mlp-bp|conv-unit|vit-unit|vgg11-step|vgg11-bp|vgg11-bn-step|vgg11-bn-bp
 *     --engine native|wasm|cpu
 *     [--threads T] [--steps S] [--warmup W] [--json] [--profile]
 *
 * --profile: after the timed steps, one more step under tf.profile, its kernels summed by name and listed,
 *   then its slowest calls with their input shapes
 * by time on stderr (where a step's time goes; the kernels' own times, without the JS between them).
 *
 * Cases (bench/torch_ref.py does the same math in PyTorch):
 * - mlp-sll: one SLL step of the library's MLP 784-1024-1024-1024 (3 ReLU units), K = 10, batch 128,
 *   keep 0.5, lambda 1 (unit 1 has no parent), Adam 1e-3: buildModel + makeTrainer(...).step, the real code
 *   path (on `native`, makeOptimizer picks the fused native Adam).
 * - mlp-bp: the same MLP plus a trainable linear classifier, end-to-end CE, one Adam (method 'bp').
 * - conv-unit: one conv unit: input 64x32x32x64 (NHWC), conv3x3 64->64 'same' + bias + ReLU, the head
 *   pools the 32x32x64 activation to 2x2x64 = 256 features (average pooling 16x16, stride 16) and applies
 *   the fixed, masked R (256 x 10); loss CE + BC against fixed random parent logits; Adam over kernel and
 *   bias: the library's convstack unit, applyUnit, ProjectionHead, unitLossStats and makeOptimizer.
 * - vgg11-step: one SLL step of the library's VGG-11 at half width (`--width-mult 0.5`: 32-64-128-128-256-256-
 *   256-256 channels, 8 units) on 28x28x1 inputs, batch 128, keep 0.5, lambda 1, Adam 1e-3 per unit; every head
 *   pools its unit's output to s x s x C with s*s*C <= 4096. vgg11-bp: the same network and a linear classifier,
 *   end-to-end backprop, one Adam. vgg11-bn-step, vgg11-bn-bp: the same with batch norm (`--batch-norm`)
 *   between each conv and its ReLU, in training mode.
 * - vit-unit: one SLL^{2+} unit of the library's ViT: patch embedding (4x4 patches of 32x32x3 images: 64
 *   tokens + the class token) and two pre-norm blocks, width 192, 3 heads, MLP 4x, head on the class token,
 *   keep 0.5, K = 10, batch 128, Adam 1e-3 (buildModel + makeTrainer(...).step, the real code path).
 *
 * Prints, on stdout, one JSON line: {case, engine, threads, backend, steps_ms: [...], first_loss: [...]}
 * (first_loss: the total loss of each unit at the first step). Progress goes to stderr.
 */
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { useBackend, type BackendName } from '../src/backend.js';
import { resolveOptions, type RunOptions } from '../src/recipe/options.js';
import { disposeHeaded } from '../src/train/model.js';
import { buildModel, makeTrainer } from '../src/recipe/run.js';
import { ProjectionHead } from '../src/objectives/projection.js';
import { unitLossStats } from '../src/objectives/unit-loss.js';
import { stopGradient } from '../src/objectives/stop-gradient.js';
import { applyUnit, unitVariables } from '../src/models/network.js';
import { buildConvStack } from '../src/models/conv.js';
import { makeOptimizer } from '../src/train/optimizers.js';
import { benchArgs, fail, intFlag } from './args.js';

export const CASES = ['mlp-sll', 'mlp-bp', 'conv-unit', 'vit-unit', 'vgg11-step', 'vgg11-bp', 'vgg11-bn-step', 'vgg11-bn-bp'] as const;
export type CaseName = (typeof CASES)[number];

/** One timed training step; returns the per-unit total losses as a tensor the caller reads and disposes. */
type Step = (step: number) => tf.Tensor;

interface Setup {
  step: Step;
  dispose(): void;
}

/** Deterministic labels 0..K-1 (a small LCG), the same on every engine. */
function labels(n: number, k: number, seed: number): tf.Tensor1D {
  const out = new Int32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s % k;
  }
  return tf.tensor1d(out, 'int32');
}

/** The shapes of the vit-unit case (bench/torch_ref.py builds the same). */
export const VIT_UNIT = { batch: 128, size: 32, channels: 3, patchSize: 4, width: 192, heads: 3, mlpRatio: 4, blocks: 2 };

function libraryCase(partial: Partial<RunOptions>, inputShape: number[]): Setup {
  const o = resolveOptions({ batchSize: 128, cropPadding: 0, ...partial });
  const model = buildModel(o, inputShape, 10);
  const trainer = makeTrainer(model, o);
  trainer.setEpoch(0);
  const x = tf.randomNormal([o.batchSize, ...inputShape], 0, 1, 'float32', 1);
  const y = labels(o.batchSize, 10, 2);
  return {
    step: (step) => {
      const stats = trainer.step(x, y, step);
      // Column 2 of the stats is each unit's total loss.
      const total = tf.tidy(() => tf.squeeze(tf.slice(stats, [0, 2], [-1, 1]), [1]));
      stats.dispose();
      return total;
    },
    dispose: () => {
      trainer.dispose();
      tf.dispose([x, y]);
      disposeHeaded(model);
    },
  };
}

function mlpCase(method: 'sll' | 'bp', backend: BackendName, threads: number): Setup {
  return libraryCase({ layers: 3, width: 1024, backend, method, threads }, [28, 28, 1]);
}

/** VGG-11 at half width on 28x28x1 inputs (the Fashion-MNIST recipe's network), batch 128. */
function vggCase(method: 'sll' | 'bp', backend: BackendName, threads: number, batchNorm = false): Setup {
  return libraryCase({ model: 'vgg11', widthMult: 0.5, backend, method, threads, batchNorm }, [28, 28, 1]);
}

function vitCase(backend: BackendName, threads: number): Setup {
  const v = VIT_UNIT;
  return libraryCase(
    { model: 'vit', batchSize: v.batch, patchSize: v.patchSize, width: v.width, heads: v.heads, mlpRatio: v.mlpRatio, layers: v.blocks, unitLayers: v.blocks, backend, threads },
    [v.size, v.size, v.channels],
  );
}

export interface ConvShape {
  batch: number;
  size: number;
  channels: number;
  /** Side of the pooled grid: the head sees grid x grid x channels features. */
  grid: number;
}

export const CONV_SHAPE: ConvShape = { batch: 64, size: 32, channels: 64, grid: 2 };

/**
 * The conv unit's step through the library's own code path: a convstack unit (tf.layers.conv2d 3x3 'same'
 * + bias + ReLU, run by applyUnit, so through the backend's fused kernels where it has them), its input
 * stop-gradient, the head pooling the [size, size, C] activation to grid x grid x C features (average pooling)
 * and the fixed, masked R, the unit loss (eq. 5) against fixed parent logits, and one Adam over the unit.
 */
export function convCase(shape: ConvShape = CONV_SHAPE): Setup {
  const { batch, size, channels, grid } = shape;
  const inputShape = [size, size, channels];
  const network = buildConvStack({ inputShape, numClasses: 10, seed: 3, batchNorm: false, layers: 1, channels });
  const unit = network.units[0];
  const x = tf.randomNormal([batch, size, size, channels], 0, 1, 'float32', 1) as tf.Tensor4D;
  const head = new ProjectionHead({
    inputShape,
    numClasses: 10,
    poolDim: grid * grid * channels,
    distribution: 'gaussian',
    keep: 0.5,
    maskScale: 'inverted',
    scale: 'features',
    seed: 4,
  });
  const parent = tf.randomNormal([batch, 10], 0, 1, 'float32', 5) as tf.Tensor2D;
  const y = labels(batch, 10, 2);
  const optimizer = makeOptimizer({ optimizer: 'adam', lr: 1e-3, lrSchedule: 'constant', momentum: 0.9 });
  return {
    step: (step) =>
      tf.tidy(() => {
        let stats!: tf.Tensor1D;
        const { grads } = tf.variableGrads(() => {
          const h = applyUnit(unit, stopGradient(x), true);
          const loss = unitLossStats(head.project(h, step), y, parent, 1);
          stats = loss.stats;
          return loss.total;
        }, unitVariables(unit));
        optimizer.applyGradients(grads);
        const total = tf.slice(stats, [2], [1]);
        stats.dispose();
        return total;
      }),
    dispose: () => {
      optimizer.dispose();
      head.dispose();
      network.model.dispose();
      tf.dispose([x, parent, y]);
    },
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main(): Promise<void> {
  const { values } = benchArgs(() =>
    parseArgs({
    options: {
      case: { type: 'string' },
      engine: { type: 'string' },
      threads: { type: 'string', default: '1' },
      steps: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '3' },
      json: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
    },
  }),
  );
  const name = values.case as CaseName;
  if (!CASES.includes(name)) fail(`--case must be one of ${CASES.join(', ')}, got ${values.case}`);
  const engine = values.engine as BackendName;
  if (!['native', 'wasm', 'cpu'].includes(engine)) fail(`--engine must be native, wasm or cpu, got ${engine}`);
  const threads = intFlag('threads', values.threads);
  const steps = intFlag('steps', values.steps);
  const warmup = intFlag('warmup', values.warmup, 0);
  if (engine !== 'native' && threads !== 1) throw new Error(`--engine ${engine} runs one thread only, got --threads ${threads}`);

  const backend = await useBackend(engine, threads);
  const log = (s: string) => process.stderr.write(`[${name} ${engine} t${threads}] ${s}\n`);
  const setup =
    name === 'conv-unit' ? convCase()
    : name === 'vit-unit' ? vitCase(engine, threads)
    : name.startsWith('vgg11-') ? vggCase(name.endsWith('-bp') ? 'bp' : 'sll', engine, threads, name.includes('-bn-'))
    : mlpCase(name === 'mlp-bp' ? 'bp' : 'sll', engine, threads);
  const times: number[] = [];
  let firstLoss: number[] = [];
  for (let i = 0; i < warmup + steps; i++) {
    const t0 = performance.now();
    const loss = setup.step(i);
    const values = Array.from(loss.dataSync());
    const ms = performance.now() - t0;
    loss.dispose();
    if (i === 0) firstLoss = values;
    if (i >= warmup) times.push(ms);
    log(`${i < warmup ? 'warm-up' : 'step'} ${i + 1}/${warmup + steps}: ${ms.toFixed(1)} ms, loss ${values.map((v) => v.toFixed(4)).join(' ')}`);
  }
  if (values.profile) {
    const t0 = performance.now();
    const info = await tf.profile(() => setup.step(warmup + steps).dispose());
    const wall = performance.now() - t0;
    const byName = new Map<string, { ms: number; calls: number }>();
    for (const k of info.kernels) {
      const e = byName.get(k.name) ?? { ms: 0, calls: 0 };
      e.ms += Number(k.kernelTimeMs) || 0;
      e.calls++;
      byName.set(k.name, e);
    }
    const rows = [...byName.entries()].sort((a, b) => b[1].ms - a[1].ms);
    const inKernels = rows.reduce((s, [, e]) => s + e.ms, 0);
    log(`profile: ${info.kernels.length} kernels, ${inKernels.toFixed(1)} ms in kernels of ${wall.toFixed(1)} ms (profiled step)`);
    for (const [k, e] of rows) log(`  ${k.padEnd(28)} ${e.ms.toFixed(2).padStart(8)} ms  ${String(e.calls).padStart(4)} calls`);
    log('slowest calls (input shapes):');
    const slowest = [...info.kernels].sort((a, b) => (Number(b.kernelTimeMs) || 0) - (Number(a.kernelTimeMs) || 0)).slice(0, 16);
    for (const k of slowest) log(`  ${k.name.padEnd(28)} ${(Number(k.kernelTimeMs) || 0).toFixed(2).padStart(8)} ms  ${k.inputShapes.map((sh) => `[${sh}]`).join(' ')}`);
  }
  setup.dispose();
  const row = { case: name, engine, threads, backend: tf.getBackend(), steps_ms: times, first_loss: firstLoss };
  if (values.json) console.log(JSON.stringify(row));
  else console.log(`${name} on ${backend} (${threads} thread${threads > 1 ? 's' : ''}): median ${median(times).toFixed(1)} ms/step over ${steps} steps; first-step loss ${firstLoss.map((v) => v.toFixed(4)).join(' ')}`);
}

// Run only as a script, so that a test can import convCase/convUnitLoss.
if (process.argv[1]?.endsWith('speed-step.js')) {
  main().catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  });
}
