/**
 * One measurement of `npm run bench:speed`: times training steps of one case on one tfjs engine, in a
 * process of its own so that the engine's thread settings start clean. Run by bench/speed.ts; by hand:
 *
 *   node dist/bench/speed-step.js --case mlp-sll|mlp-bp|conv-unit|vit-unit --engine native|wasm|cpu
 *     [--threads T] [--steps S] [--warmup W] [--json]
 *
 * Cases (bench/torch_ref.py does the same math in PyTorch):
 * - mlp-sll: one SLL step of the library's MLP 784-1024-1024-1024 (3 ReLU units), K = 10, batch 128,
 *   keep 0.5, lambda 1 (unit 1 has no parent), Adam 1e-3: buildModel + makeTrainer(...).step, the real code
 *   path (on `native`, makeOptimizer picks the fused native Adam).
 * - mlp-bp: the same MLP plus a trainable linear classifier, end-to-end CE, one Adam (method 'bp').
 * - conv-unit: one conv unit: input 64x32x32x64 (NHWC), conv3x3 64->64 'same' + bias + ReLU, the head
 *   pools the 32x32x64 activation to 2x2x64 = 256 features (average pooling 16x16, stride 16) and applies
 *   the fixed, masked R (256 x 10); loss CE + BC against fixed random parent logits; Adam over kernel and
 *   bias. The library has no conv unit yet, so it is written here with tf ops and the library's unitLoss,
 *   ProjectionHead and makeOptimizer.
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
import { unitLoss } from '../src/objectives/unit-loss.js';
import { makeOptimizer } from '../src/train/optimizers.js';

export const CASES = ['mlp-sll', 'mlp-bp', 'conv-unit', 'vit-unit'] as const;
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
 * The conv unit's step as a function of its tensors, so that a test can check it on small shapes:
 * h = relu(conv3x3(x, W) + b), v = avgPool(h) flattened (NHWC order) times the masked R,
 * L = CE(v, y) + lambda * BC(v, parent); returns L and its gradients w.r.t. W and b (no update).
 */
export function convUnitLoss(
  x: tf.Tensor4D,
  kernel: tf.Variable,
  bias: tf.Variable,
  head: ProjectionHead,
  targets: tf.Tensor2D,
  parent: tf.Tensor2D,
  step: number,
  grid: number,
  lambda = 1,
): { value: tf.Scalar; grads: tf.NamedTensorMap } {
  if (x.shape[1] % grid !== 0 || x.shape[2] % grid !== 0) throw new Error(`input ${x.shape} does not pool to ${grid}x${grid}`);
  const pool: [number, number] = [x.shape[1] / grid, x.shape[2] / grid];
  return tf.variableGrads(() => {
    const h = tf.relu(tf.add(tf.conv2d(x, kernel as tf.Tensor4D, 1, 'same'), bias));
    const pooled = tf.avgPool(h as tf.Tensor4D, pool, pool, 'valid');
    const v = head.project(tf.reshape(pooled, [x.shape[0], -1]), step);
    return unitLoss(v, targets, parent, lambda).total;
  }, [kernel, bias]);
}

export function convCase(shape: ConvShape = CONV_SHAPE): Setup {
  const { batch, size, channels, grid } = shape;
  const features = grid * grid * channels;
  const x = tf.randomNormal([batch, size, size, channels], 0, 1, 'float32', 1) as tf.Tensor4D;
  const fanIn = 3 * 3 * channels;
  const limit = Math.sqrt(6 / fanIn);
  const kernel = tf.variable(tf.randomUniform([3, 3, channels, channels], -limit, limit, 'float32', 3), true, 'conv_kernel');
  const bias = tf.variable(tf.zeros([channels]), true, 'conv_bias');
  const head = new ProjectionHead({
    inputShape: [features],
    numClasses: 10,
    poolDim: null,
    distribution: 'gaussian',
    keep: 0.5,
    maskScale: 'inverted',
    scale: 'features',
    seed: 4,
  });
  const parent = tf.randomNormal([batch, 10], 0, 1, 'float32', 5) as tf.Tensor2D;
  const y = labels(batch, 10, 2);
  const targets = tf.tidy(() => tf.oneHot(y, 10).toFloat() as tf.Tensor2D);
  const optimizer = makeOptimizer({ optimizer: 'adam', lr: 1e-3, lrSchedule: 'constant', momentum: 0.9 });
  return {
    step: (step) =>
      tf.tidy(() => {
        const { value, grads } = convUnitLoss(x, kernel, bias, head, targets, parent, step, grid);
        optimizer.applyGradients(grads);
        return tf.reshape(value, [1]);
      }),
    dispose: () => {
      optimizer.dispose();
      head.dispose();
      tf.dispose([x, kernel, bias, parent, y, targets]);
    },
  };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      case: { type: 'string' },
      engine: { type: 'string' },
      threads: { type: 'string', default: '1' },
      steps: { type: 'string', default: '10' },
      warmup: { type: 'string', default: '3' },
      json: { type: 'boolean', default: false },
    },
  });
  const name = values.case as CaseName;
  if (!CASES.includes(name)) throw new Error(`--case must be one of ${CASES.join(', ')}, got ${values.case}`);
  const engine = values.engine as BackendName;
  if (!['native', 'wasm', 'cpu'].includes(engine)) throw new Error(`--engine must be native, wasm or cpu, got ${engine}`);
  const threads = Number(values.threads);
  const steps = Number(values.steps);
  const warmup = Number(values.warmup);
  if (engine !== 'native' && threads !== 1) throw new Error(`--engine ${engine} runs one thread only, got --threads ${threads}`);

  const backend = await useBackend(engine, threads);
  const log = (s: string) => process.stderr.write(`[${name} ${engine} t${threads}] ${s}\n`);
  const setup = name === 'conv-unit' ? convCase() : name === 'vit-unit' ? vitCase(engine, threads) : mlpCase(name === 'mlp-bp' ? 'bp' : 'sll', engine, threads);
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
