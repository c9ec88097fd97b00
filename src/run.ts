/**
 * One call from options to a trained, saved model: load the data, build the network and its heads, fit,
 * and write the run's files. The CLI is a thin shell over this; library users may call it or its parts.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadDataset, subset, type DataSplits } from './data/index.js';
import { writeFileAtomic, saveModel } from './io/model-files.js';
import { OptionError, resolveOptions, type RunOptions } from './options.js';
import { fit, buildModel, type FitCallbacks, type FitResult, type UnitEpochMetrics } from './train/fit.js';
import { disposeHeaded } from './train/model.js';

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

/** The data of a run: the named data set, cut to the requested seeded subsets. */
export function loadRunData(o: RunOptions): DataSplits {
  const full = loadDataset(o.dataset, { dataDir: o.dataDir ?? undefined, seed: o.seed });
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
 * Trains as `partial` says (defaults for the rest) and, when `outDir` is given, writes summary.json,
 * metrics.jsonl (one line per epoch per unit, appended as epochs end) and the model files into it.
 */
export async function runTraining(
  partial: Partial<RunOptions>,
  outDir: string | null,
  callbacks: FitCallbacks & { onData?(data: DataSplits): void } = {},
): Promise<{ summary: RunSummary; result: FitResult }> {
  const o = resolveOptions(partial);
  if (outDir) prepareOutDir(outDir);
  const data = loadRunData(o);
  callbacks.onData?.(data);
  const metricsFile = outDir ? path.join(outDir, 'metrics.jsonl') : null;
  if (metricsFile) fs.writeFileSync(metricsFile, '');
  const model = buildModel(o, data.train.shape, data.train.numClasses);
  try {
    const result = await fit(model, data, o, {
      ...callbacks,
      onEpochEnd(epoch, metrics, evaluation) {
        if (metricsFile) fs.appendFileSync(metricsFile, metrics.map((m) => JSON.stringify(withMethod(m, o))).join('\n') + '\n');
        callbacks.onEpochEnd?.(epoch, metrics, evaluation);
      },
    });
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

/** Creates the output folder and checks that it can be written, before any time is spent training. */
export function prepareOutDir(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (e) {
    throw new OptionError('out', `--out ${dir} cannot be written: ${(e as Error).message}`);
  }
}

function withMethod(m: UnitEpochMetrics, o: RunOptions) {
  return { method: o.method, ...m };
}
