/**
 * From options to a trained, saved model: load the data, build the network and its heads (or take them
 * from a checkpoint), fit with checkpoints, and write the run's files. The CLI is a thin shell over this;
 * library users may call it or its parts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadDataset, subset, type DataSplits } from './data/index.js';
import { readLatestCheckpoint, writeCheckpoint } from './io/checkpoint.js';
import { loadModel, saveModel, writeFileAtomic } from './io/model-files.js';
import { useBackend } from './backend.js';
import { OptionError, blasThreads, resolveOptions, type RunOptions } from './options.js';
import {
  fit,
  buildModel,
  type FitCallbacks,
  type FitResult,
  type FitState,
  type UnitEpochMetrics,
} from './train/fit.js';
import { disposeHeaded, type HeadedNetwork } from './train/model.js';
import type { OptimizerState } from './train/optimizers.js';
import type { StepEngine } from './train/engine.js';
import { PipelineEngine, balancedStages, evenStages, measureUnitCosts } from './train/pipeline.js';

/** DIR/summary.json. */
export interface RunSummary {
  method: RunOptions['method'];
  model: RunOptions['model'];
  dataset: RunOptions['dataset'];
  epochs: number;
  /** The model's prediction (last head for SLL, classifier for BP), 0..1. */
  test_accuracy: number;
  unit_test_accuracy: number[];
  ensemble_test_accuracy: number | null;
  train_seconds: number;
  samples_per_second: number;
  train_examples: number;
  test_examples: number;
  backend: string;
  options: RunOptions;
}

export interface RunCallbacks extends Omit<FitCallbacks, 'onCheckpoint'> {
  onData?(data: DataSplits, options: RunOptions): void;
  onCheckpoint?(dir: string, step: number): void;
}

export interface RunControl {
  /** Polled after every step; true writes a checkpoint and stops with FitInterrupted. */
  stopRequested?(): boolean;
}

/** The data of a run: the named data set, cut to the requested seeded subsets. */
export function loadRunData(o: RunOptions): DataSplits {
  const full = loadDataset(o.dataset, { dataDir: o.dataDir ?? undefined, seed: o.seed, imageSize: o.imageSize });
  const data = {
    train: o.trainLimit ? subset(full.train, o.trainLimit, o.seed) : full.train,
    test: o.testLimit ? subset(full.test, o.testLimit, o.seed + 1) : full.test,
  };
  if (o.batchSize > data.train.size) {
    throw new OptionError('batchSize', `--batch-size ${o.batchSize} is larger than the training set (${data.train.size} examples)`);
  }
  return data;
}

/**
 * Trains as `partial` says (defaults for the rest), on the backend it names, and, when `outDir` is given, writes summary.json,
 * metrics.jsonl (one line per epoch per unit, appended as epochs end), checkpoints and the model files.
 */
export async function runTraining(
  partial: Partial<RunOptions>,
  outDir: string | null,
  callbacks: RunCallbacks = {},
  control: RunControl = {},
): Promise<{ summary: RunSummary; result: FitResult }> {
  const o = resolveOptions(partial);
  if (outDir) prepareOutDir(outDir);
  await useBackend(o.backend, blasThreads(o));
  const data = loadRunData(o);
  return train(o, data, buildModel(o, data.train.shape, data.train.numClasses), outDir, null, callbacks, control);
}

/**
 * Continues the run in `outDir` from its newest whole checkpoint, with the options it was started with
 * (`overrides` may change only where it runs, e.g. the backend). Ends as the uninterrupted run would.
 */
export async function resumeTraining(
  outDir: string,
  callbacks: RunCallbacks & { warn?(message: string): void } = {},
  control: RunControl = {},
  overrides: Partial<Pick<RunOptions, 'backend'>> = {},
): Promise<{ summary: RunSummary; result: FitResult }> {
  if (!fs.existsSync(outDir)) throw new OptionError('resume', `--resume ${outDir}: no such folder`);
  prepareOutDir(outDir);
  const checkpoint = readLatestCheckpoint(outDir, callbacks.warn ?? (() => {}));
  const o = resolveOptions({ ...checkpoint.options, ...overrides });
  await useBackend(o.backend, blasThreads(o));
  const data = loadRunData(o);
  return train(o, data, await loadModel(checkpoint.dir), outDir, { state: checkpoint.state, optimizers: checkpoint.optimizers }, callbacks, control);
}

async function train(
  o: RunOptions,
  data: DataSplits,
  model: HeadedNetwork,
  outDir: string | null,
  resume: { state: FitState; optimizers: OptimizerState[] } | null,
  callbacks: RunCallbacks,
  control: RunControl,
): Promise<{ summary: RunSummary; result: FitResult }> {
  callbacks.onData?.(data, o);
  const metricsFile = outDir ? path.join(outDir, 'metrics.jsonl') : null;
  const line = (m: UnitEpochMetrics) => JSON.stringify({ method: o.method, ...m }) + '\n';
  if (metricsFile) fs.writeFileSync(metricsFile, (resume?.state.metrics ?? []).map(line).join(''));
  try {
    const result = await fit(
      model,
      data,
      o,
      {
        ...callbacks,
        onEpochEnd(epoch, metrics, evaluation) {
          if (metricsFile) fs.appendFileSync(metricsFile, metrics.map(line).join(''));
          callbacks.onEpochEnd?.(epoch, metrics, evaluation);
        },
        onCheckpoint: outDir
          ? async (state, optimizers, steps) => {
              const dir = await writeCheckpoint(outDir, steps, o, state, model, optimizers);
              callbacks.onCheckpoint?.(dir, steps);
            }
          : undefined,
      },
      {
        start: resume ?? undefined,
        checkpointEvery: o.checkpointEvery,
        stopRequested: control.stopRequested,
        engine: o.pipeline > 1 ? () => startPipeline(model, o, data.train.shape) : undefined,
      },
    );
    const summary: RunSummary = {
      method: o.method,
      model: o.model,
      dataset: o.dataset,
      epochs: o.epochs,
      test_accuracy: result.evaluation.accuracy,
      unit_test_accuracy: result.evaluation.unitAccuracy,
      ensemble_test_accuracy: result.evaluation.ensembleAccuracy,
      train_seconds: result.trainSeconds,
      samples_per_second: result.samplesPerSecond,
      train_examples: data.train.size,
      test_examples: data.test.size,
      backend: tf.getBackend(),
      options: o,
    };
    if (outDir) {
      await saveModel(outDir, model);
      writeFileAtomic(path.join(outDir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
    }
    return { summary, result };
  } finally {
    disposeHeaded(model);
  }
}

/** Workers for `o.pipeline` stages, over units split evenly or balanced by measured step time. */
async function startPipeline(model: HeadedNetwork, o: RunOptions, inputShape: readonly number[]): Promise<StepEngine> {
  const units = model.network.units.length;
  let ranges = evenStages(units, o.pipeline);
  if (o.stages === 'auto') {
    const probe = buildModel(o, inputShape, model.network.spec.numClasses);
    try {
      ranges = balancedStages(measureUnitCosts(probe, o, inputShape), o.pipeline);
    } finally {
      disposeHeaded(probe);
    }
  }
  return PipelineEngine.start(model, o, ranges);
}

/** Creates the output folder and checks that it can be written, before any time is spent training. */
export function prepareOutDir(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (e) {
    throw new OptionError('out', `--out ${dir} cannot be written: ${(e as Error).message}`);
  }
}
