import * as tf from '@tensorflow/tfjs';
import { resolveOptions, sllStrategy, type RunOptions } from '../../src/recipe/options.js';
import { buildModel, fitSetup, makeTrainer, stageRun } from '../../src/recipe/run.js';
import { resolveSllStrategy, type SllStrategy } from '../../src/train/config.js';
import type { HeadedNetwork } from '../../src/train/model.js';
import { unitVariables } from '../../src/models/network.js';
import { makeDataset } from '../../src/data/dataset.js';
import { Rng } from '../../src/data/random.js';
import { SllTrainer } from '../../src/train/sll.js';
import type { Trainer } from '../../src/train/trainer.js';
import type { DataSplits } from '../../src/data/dataset.js';
import { SequentialEngine, type StepEngine } from '../../src/train/engine.js';
import { fit, type FitControl, type FitHooks, type FitResult } from '../../src/train/fit.js';
import { PipelineEngine } from '../../src/train/pipeline.js';
import type { StageRange } from '../../src/train/stages.js';

export const INPUT_SHAPE = [6, 6, 1] as const;
export const CLASSES = 4;

/** A small SLL/BP model on 6x6 inputs, 4 classes, built as a run with these options would build it. */
export function smallModel(o: Partial<RunOptions> = {}): { model: HeadedNetwork; options: RunOptions } {
  const options = resolveOptions({ layers: 3, width: 16, keep: 0.5, ...o });
  return { model: buildModel(options, INPUT_SHAPE, CLASSES), options };
}

/** The SLL trainer of a small model, its strategy from the options with `overrides` over them. */
export function sllTrainer(m: { model: HeadedNetwork; options: RunOptions }, overrides: Partial<SllStrategy> = {}): SllTrainer {
  const strategy = resolveSllStrategy({ ...sllStrategy(m.options), ...overrides }, m.model.network.units.length);
  return new SllTrainer(m.model, strategy, m.options.epochs);
}

/** The trainer of a small model's method. */
export function trainerOf(m: { model: HeadedNetwork; options: RunOptions }): Trainer {
  return makeTrainer(m.model, m.options);
}

export function batch(seed: number, n = 16): { x: tf.Tensor4D; labels: tf.Tensor1D } {
  const x = tf.randomNormal([n, ...INPUT_SHAPE], 0, 1, 'float32', seed) as tf.Tensor4D;
  const labels = tf.tensor1d(Array.from({ length: n }, (_, i) => (i * 7 + seed) % CLASSES), 'int32');
  return { x, labels };
}

/** Copies of the weights of unit `i`, as plain arrays. */
export function unitWeights(model: HeadedNetwork, i: number): Float32Array[] {
  return unitVariables(model.network.units[i]).map((v) => (v.dataSync() as Float32Array).slice());
}

/** A data set of `n` random 6x6 images with random labels, in the loaders' format. */
export function randomImages(n: number, seed: number) {
  const rng = new Rng(seed);
  const pixels = Uint8Array.from({ length: n * INPUT_SHAPE[0] * INPUT_SHAPE[1] }, () => rng.int(256));
  const labels = Int32Array.from({ length: n }, () => rng.int(CLASSES));
  return makeDataset({ name: `random/${seed}`, pixels, labels, shape: INPUT_SHAPE, numClasses: CLASSES, mean: [0.5], std: [0.25] });
}

/** Fits a small model as a run of its options would (sequentially, or on `engine`). */
export async function fitSmall(
  m: { model: HeadedNetwork; options: RunOptions },
  data: DataSplits,
  hooks: FitHooks = {},
  control: FitControl = {},
  engine?: StepEngine,
): Promise<FitResult> {
  return fit(fitSetup(m.options, m.model, data, engine ?? new SequentialEngine(makeTrainer(m.model, m.options))), hooks, control);
}

/** A pipeline of `ranges` for a small model, as a run of its options would start it. */
export function pipelineOf(m: { model: HeadedNetwork; options: RunOptions }, ranges: StageRange[]): Promise<PipelineEngine> {
  return PipelineEngine.start(m.model, stageRun(m.options, m.model.network.units.length), ranges);
}
