/** `sll bench memory`: peak training memory of one step against depth, SLL beside BP (paper Fig. 2). */
import * as tf from '@tensorflow/tfjs';
import { BACKENDS, useBackend, type BackendName } from '../backend.js';
import { MODEL_WIDTHS, OptionError, resolveOptions, type RunOptions } from '../recipe/options.js';
import { buildModel, makeTrainer } from '../recipe/run.js';
import { measureStepMemory, type StepBytes } from '../train/memory.js';
import { disposeHeaded } from '../train/model.js';
import type { Command } from './args.js';

const MODELS = { mlp: 'mlp', conv: 'convstack', vit: 'vit' } as const;

/** One row of the table (and one JSON line). */
export interface StepMemoryRow extends StepBytes {
  model: string;
  method: string;
  depth: number;
  /** Layers (blocks) per unit: 1 is layer-wise SLL, i the block-wise SLL^{i+}. */
  unit_layers: number;
  /** What was measured: the width (channels, embedding width), batch, optimizer, input shape and tfjs backend. */
  width: number;
  batch: number;
  optimizer: string;
  input_shape: number[];
  backend: string;
}

export const benchMemoryCommand: Command = {
  name: 'bench memory',
  brief: 'peak training memory against depth, SLL beside BP',
  summary:
    'Measures the tensor memory of one training step (after two warm-up steps, so optimizer state exists) at each depth, ' +
    'SLL beside BP: peak_bytes (all tensors alive at the peak), param_bytes (parameters + optimizer state), ' +
    'activation_peak_bytes (peak minus what was held before the step); on --backend webgpu also gpu_pool_bytes (the GPU ' +
    'buffers tfjs-webgpu holds after the step: its high-water mark). Each --json row also says what was measured: model, method, depth, ' +
    'unit_layers, width, batch, optimizer, input_shape, backend.',
  usage: '[--model mlp|conv|vit] [--depths 2,4,8,16] [--method sll,bp] [--unit-layers I] [--width W] [--batch-size B] [--image-size S] [--json]',
  flags: {
    model: { kind: 'string', values: ['mlp', 'conv', 'vit'], default: 'mlp', description: 'an MLP on 28x28x1 inputs, a stack of conv3x3 units without pooling on SxSx3, or a ViT on SxSx3 (depth: blocks)' },
    depths: { kind: 'numbers', default: '2,4,8,16', description: 'the depths (units) to measure' },
    method: { kind: 'string', values: ['sll,bp', 'sll', 'bp', 'bp,sll'], default: 'sll,bp', description: 'sll, bp, or both (comma-separated)' },
    unitLayers: { kind: 'int', default: 1, description: 'layers (ViT blocks) per unit: SLL^{i+}' },
    width: { kind: 'int', description: 'units\' width (mlp), channels (conv) or embedding width (vit) (default 1024 mlp, 64 conv, 192 vit: sll train\'s)' },
    heads: { kind: 'int', default: 3, description: 'vit: attention heads' },
    patchSize: { kind: 'int', default: 4, description: 'vit: patch size (a 32x32 image gives 64 tokens and the class token)' },
    mlpRatio: { kind: 'number', default: 4, description: 'vit: MLP width over embedding width' },
    batchSize: { kind: 'int', description: 'examples per step (default 128 mlp, 32 conv and vit)' },
    imageSize: { kind: 'int', default: 32, description: 'conv and vit: input images are S x S x 3 (mlp: 28 x 28 x 1)' },
    optimizer: { kind: 'string', values: ['sgd', 'adam'], default: 'sgd', description: 'the optimizer (SGD with momentum, as in the paper\'s Fig. 2)' },
    backend: { kind: 'string', values: BACKENDS, default: 'auto', description: 'tfjs backend' },
    json: { kind: 'boolean', description: 'one JSON line per measurement on stdout (the table goes to stderr)' },
  },
  async run(values) {
    const kind = (values.model as keyof typeof MODELS | undefined) ?? 'mlp';
    const conv = kind !== 'mlp';
    const depthsValue = values.depths ?? [2, 4, 8, 16];
    const depths = Array.isArray(depthsValue) ? (depthsValue as number[]) : [depthsValue as number];
    for (const d of depths) if (!Number.isInteger(d) || d < 1) throw new OptionError('depths', `--depths must be positive integers, got ${d}`);
    const methods = String(values.method ?? 'sll,bp').split(',').map((m) => m.trim()) as RunOptions['method'][];
    const size = (values.imageSize as number | undefined) ?? 32;
    const inputShape = conv ? [size, size, 3] : [28, 28, 1];
    const base: Partial<RunOptions> = {
      model: MODELS[kind],
      width: (values.width as number | undefined) ?? MODEL_WIDTHS[MODELS[kind]],
      unitLayers: (values.unitLayers as number | undefined) ?? 1,
      ...((kind === 'vit' || values.heads !== undefined || values.patchSize !== undefined || values.mlpRatio !== undefined) && {
        heads: (values.heads as number | undefined) ?? 3,
        patchSize: (values.patchSize as number | undefined) ?? 4,
        mlpRatio: (values.mlpRatio as number | undefined) ?? 4,
      }),
      batchSize: (values.batchSize as number | undefined) ?? (conv ? 32 : 128),
      optimizer: (values.optimizer as RunOptions['optimizer'] | undefined) ?? 'sgd',
      backend: (values.backend as BackendName | undefined) ?? 'auto',
      cropPadding: 0,
    };
    // Check every combination before measuring any.
    // A unit holds at most the network's layers: at depth 2, SLL^{3+} is one unit of 2 blocks (its row says so).
    const runs = methods.flatMap((method) =>
      depths.map((layers) => {
        try {
          return resolveOptions({ ...base, method, layers, unitLayers: Math.min(base.unitLayers!, layers) });
        } catch (e) {
          // The depth is --depths here, not --layers.
          if (e instanceof OptionError && e.option === 'layers') throw new OptionError('depths', e.message.replace('--layers', '--depths'));
          throw e;
        }
      }),
    );
    await useBackend(base.backend!);
    const rows: StepMemoryRow[] = [];
    for (const o of runs) {
      const model = buildModel(o, inputShape, 10);
      const trainer = makeTrainer(model, o);
      const x = tf.randomNormal([o.batchSize, ...inputShape], 0, 1, 'float32', o.seed);
      const labels = tf.tensor1d(Array.from({ length: o.batchSize }, (_, i) => i % 10), 'int32');
      try {
        const row: StepMemoryRow = {
          model: kind,
          method: o.method,
          depth: o.layers,
          unit_layers: o.unitLayers,
          width: o.width,
          batch: o.batchSize,
          optimizer: o.optimizer,
          input_shape: inputShape,
          backend: tf.getBackend(),
          ...(await measureStepMemory(model.network, trainer, x, labels)),
        };
        rows.push(row);
        if (values.json) console.log(JSON.stringify(row));
      } finally {
        tf.dispose([x, labels]);
        trainer.dispose();
        disposeHeaded(model);
      }
    }
    const mb = (b: number) => (b / 2 ** 20).toFixed(1).padStart(9);
    const table = [
      `peak memory of one training step: ${kind}, width ${base.width}, batch ${base.batchSize}, ${base.optimizer}${conv ? `, ${size}x${size} images` : ''} (MiB)`,
      'method  unit layers  depth     peak    params  activations',
      ...rows.map((r) => `${r.method.padEnd(6)}  ${String(r.unit_layers).padStart(11)}  ${String(r.depth).padStart(5)}  ${mb(r.peak_bytes)}  ${mb(r.param_bytes)}  ${mb(r.activation_peak_bytes)}`),
    ].join('\n');
    // With --json, stdout carries only JSON lines; the table goes to stderr.
    if (values.json) console.error(table);
    else console.log(table);
    return 0;
  },
};
