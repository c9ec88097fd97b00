/**
 * From a run's options to a trained, saved model (Node): load the named data set, build the named network
 * and its heads (or take them from a checkpoint), fit with checkpoints, and write the run's files. The CLI
 * is a thin shell over this; library users may call it, or fitSll/fitBp with their own model and data.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../backend.js';
import { loadDataset } from '../data/load.js';
import { batchSource } from '../data/source.js';
import { subset } from '../data/subset.js';
import type { DataSplits } from '../data/dataset.js';
import { readLatestCheckpoint, writeCheckpoint } from '../io/checkpoint.js';
import { loadModel, saveModel, writeFileAtomic } from '../io/model-files.js';
import type { RunSummary } from '../io/runs.js';
import { buildConvStack, buildVgg11 } from '../models/conv.js';
import { buildMlp } from '../models/mlp.js';
import { buildVit } from '../models/vit.js';
import { groupUnits, withClassifier, type Network } from '../models/network.js';
import { resolveBpStrategy, resolveLoopConfig, resolveSllStrategy } from '../train/config.js';
import { BpTrainer } from '../train/bp.js';
import { SequentialEngine, type StepEngine } from '../train/engine.js';
import { fit, type FitResult, type FitSetup, type FitState, type ProgressHooks } from '../train/fit.js';
import { attachHeads, disposeHeaded, type HeadedNetwork, type Normalization } from '../train/model.js';
import type { OptimizerState } from '../train/optimizers.js';
import { PipelineEngine } from '../train/pipeline.js';
import type { StageRun } from '../train/pipeline-protocol.js';
import { balancedStages, evenStages, measureUnitCosts } from '../train/stages.js';
import { SllTrainer } from '../train/sll.js';
import type { Trainer } from '../train/trainer.js';
import { OptionError, blasThreads, bpStrategy, loopConfig, resolveOptions, sllStrategy, type RunOptions } from './options.js';

/** What a run tells its front end, besides the fit loop's hooks. */
export interface RunCallbacks extends ProgressHooks {
  /** The data are loaded (before any training). */
  onData?(data: DataSplits, options: RunOptions): void;
  /** A checkpoint was written to `dir` after `step` steps. */
  onCheckpoint?(dir: string, step: number): void;
  /** Something the user should hear about (e.g. a damaged checkpoint skipped). */
  warn?(message: string): void;
}

/** How a running run is stopped from outside. */
export interface RunControl {
  /** Polled after every step; true writes a checkpoint and stops with FitInterrupted. */
  stopRequested?(): boolean;
}

/** The network `o` names, for inputs of `inputShape` and `numClasses` classes, its layers grouped into units of `o.unitLayers`. */
export function buildNetwork(o: RunOptions, inputShape: readonly number[], numClasses: number): Network {
  return groupUnits(layerUnits(o, inputShape, numClasses), o.unitLayers);
}

/** One unit per layer (dense, conv [+ BN] + ReLU [+ pool], or transformer block). */
function layerUnits(o: RunOptions, inputShape: readonly number[], numClasses: number): Network {
  const { seed, batchNorm } = o;
  switch (o.model) {
    case 'mlp':
      return buildMlp({ inputShape, numClasses, layers: o.layers, width: o.width, seed });
    case 'vgg11':
      return buildVgg11({ inputShape, numClasses, seed, batchNorm, widthMult: o.widthMult });
    case 'convstack':
      return buildConvStack({ inputShape, numClasses, seed, batchNorm, layers: o.layers, channels: o.width });
    case 'vit':
      return buildVit({ inputShape, numClasses, seed, patchSize: o.patchSize, width: o.width, blocks: o.layers, heads: o.heads, mlpRatio: o.mlpRatio, dropout: o.dropout });
  }
}

/** The network of `o` with its projection heads (SLL) or its classifier (BP). */
export function buildModel(o: RunOptions, inputShape: readonly number[], numClasses: number, normalization: Normalization | null = null): HeadedNetwork {
  const network = buildNetwork(o, inputShape, numClasses);
  if (o.method === 'bp') return { network: withClassifier(network, o.seed, o.token), heads: [], inputHead: null, normalization };
  return attachHeads(network, resolveSllStrategy(sllStrategy(o), network.units.length), normalization);
}

/** The trainer of `o`'s method for `model`. */
export function makeTrainer(model: HeadedNetwork, o: RunOptions): Trainer {
  return o.method === 'sll'
    ? new SllTrainer(model, resolveSllStrategy(sllStrategy(o), model.network.units.length), o.epochs)
    : new BpTrainer(model.network, resolveBpStrategy(bpStrategy(o)), o.epochs);
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
 * Trains as `partial` says (defaults for the rest), on the backend it names, and, when `outDir` is given,
 * writes summary.json, metrics.jsonl (one line per epoch per unit, appended as epochs end), checkpoints
 * and the model files.
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
  const model = buildModel(o, data.train.shape, data.train.numClasses, normalizationOf(data));
  return train(o, data, model, outDir, null, callbacks, control);
}

/**
 * Continues the run in `outDir` from its newest whole checkpoint, with the options it was started with
 * (`overrides` may change only where it runs, e.g. the backend). Ends as the uninterrupted run would.
 */
export async function resumeTraining(
  outDir: string,
  callbacks: RunCallbacks = {},
  control: RunControl = {},
  overrides: Partial<Pick<RunOptions, 'backend'>> = {},
): Promise<{ summary: RunSummary; result: FitResult }> {
  if (!fs.existsSync(outDir)) throw new OptionError('resume', `--resume ${outDir}: no such folder`);
  prepareOutDir(outDir);
  const checkpoint = readLatestCheckpoint(outDir, callbacks.warn ?? (() => {}));
  const o = resolveOptions({ ...(checkpoint.options as Partial<RunOptions>), ...overrides });
  await useBackend(o.backend, blasThreads(o));
  const data = loadRunData(o);
  const resume = { state: checkpoint.state, optimizers: checkpoint.optimizers };
  return train(o, data, await loadModel(checkpoint.dir), outDir, resume, callbacks, control);
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
  const line = (m: object) => JSON.stringify({ method: o.method, ...m }) + '\n';
  if (metricsFile) fs.writeFileSync(metricsFile, (resume?.state.metrics ?? []).map(line).join(''));
  try {
    const engine = o.pipeline > 1 ? await startPipeline(model, o) : new SequentialEngine(makeTrainer(model, o));
    const result = await fit(
      fitSetup(o, model, data, engine),
      {
        ...callbacks,
        onEpochEnd(epoch, metrics, evaluation) {
          if (metricsFile) fs.appendFileSync(metricsFile, metrics.map(line).join(''));
          callbacks.onEpochEnd?.(epoch, metrics, evaluation);
        },
        onCheckpoint: outDir
          ? async (state, optimizers, steps) => {
              const dir = await writeCheckpoint(outDir, steps, { ...o }, state, model, optimizers);
              callbacks.onCheckpoint?.(dir, steps);
            }
          : undefined,
      },
      { start: resume ?? undefined, checkpointEvery: o.checkpointEvery, stopRequested: control.stopRequested },
    );
    const evaluation = result.evaluation!;
    const summary: RunSummary = {
      method: o.method,
      model: o.model,
      dataset: o.dataset,
      epochs: o.epochs,
      test_accuracy: evaluation.accuracy,
      unit_test_accuracy: evaluation.unitAccuracy,
      ensemble_test_accuracy: evaluation.ensembleAccuracy,
      train_seconds: result.trainSeconds,
      samples_per_second: result.samplesPerSecond,
      train_examples: data.train.size,
      test_examples: data.test.size,
      backend: tf.getBackend(),
      options: { ...o },
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

/** What the fit loop needs for a run of `o`: the model, the engine, the data as batch sources (training batches augmented), the loop. */
export function fitSetup(o: RunOptions, model: HeadedNetwork, data: DataSplits, engine: StepEngine): FitSetup {
  const augment = o.cropPadding > 0 || o.flip ? { cropPadding: o.cropPadding, flip: o.flip } : null;
  return {
    model,
    engine,
    train: batchSource(data.train, { augment }),
    validation: batchSource(data.test),
    loop: resolveLoopConfig(loopConfig(o)),
    seed: o.seed,
  };
}

/** How every pipeline stage of a run of `o` trains and where it runs. */
export function stageRun(o: RunOptions, units: number): StageRun {
  return { strategy: resolveSllStrategy(sllStrategy(o), units), epochs: o.epochs, backend: o.backend, threads: blasThreads(o) };
}

/** Workers for `o.pipeline` stages, over units split evenly or balanced by measured step time. */
async function startPipeline(model: HeadedNetwork, o: RunOptions): Promise<StepEngine> {
  const units = model.network.units.length;
  const run = stageRun(o, units);
  let ranges = evenStages(units, o.pipeline);
  if (o.stages === 'auto') ranges = balancedStages(measureUnitCosts(model, run.strategy, o.batchSize), o.pipeline);
  return PipelineEngine.start(model, run, ranges);
}

function normalizationOf(data: DataSplits): Normalization {
  return { mean: [...data.train.mean], std: [...data.train.std] };
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
