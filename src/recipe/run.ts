/**
 * From a run's options to a trained, saved model (Node): load the named data set, build the named network
 * and its heads (or take them from a checkpoint), fit with checkpoints, and write the run's files. The CLI
 * is a thin shell over this; library users may call it, or fitSll/fitBp with their own model and data.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../backend.js';
import { loadDataset } from '../data/load.js';
import { batchSource } from '../data/source.js';
import { subset } from '../data/subset.js';
import type { DataSplits } from '../data/dataset.js';
import { listCheckpoints, readLatestCheckpoint, writeCheckpoint } from '../io/checkpoint.js';
import { appendFileChecked, loadModel, saveModel, writeFileAtomic } from '../io/model-files.js';
import { claimRunFolder, type RunFolder } from '../io/run-folder.js';
import type { RunSummary } from '../io/runs.js';
import { buildConvStack, buildVgg11 } from '../models/conv.js';
import { buildMlp } from '../models/mlp.js';
import { buildVit } from '../models/vit.js';
import { groupUnits, withClassifier, type Network } from '../models/network.js';
import { ConfigError, defined, resolveBpStrategy, resolveLoopConfig, resolveSllStrategy } from '../train/config.js';
import { BpTrainer } from '../train/bp.js';
import { SequentialEngine, type StepEngine } from '../train/engine.js';
import { FitInterrupted, fit, type FitResult, type FitSetup, type FitState, type ProgressHooks } from '../train/fit.js';
import { attachHeads, disposeHeaded, normalizationOf, type HeadedNetwork, type Normalization } from '../train/model.js';
import type { OptimizerState } from '../train/optimizers.js';
import { PipelineEngine, stageInits } from '../train/pipeline.js';
import { RedisTransport, brokerUrlWithPassword, redactBrokerUrl, type LocalStages } from '../train/redis-stages.js';
import type { StageRun } from '../train/pipeline-protocol.js';
import { balancedStages, evenStages, measureUnitCosts } from '../train/stages.js';
import { SllTrainer } from '../train/sll.js';
import type { Trainer } from '../train/trainer.js';
import { OPTION_TABLE, OptionError, RUN_NAME, blasThreads, flagName, bpStrategy, loopConfig, recordedOptions, resolveOptions, sllStrategy, type RunOptions } from './options.js';

/** What a run tells its front end, besides the fit loop's hooks. */
export interface RunCallbacks extends ProgressHooks {
  /** The data are loaded (before any training). */
  onData?(data: DataSplits, options: RunOptions): void;
  /** A checkpoint was written to `dir` after `step` steps. */
  onCheckpoint?(dir: string, step: number): void;
  /** Something the user should hear about (e.g. a damaged checkpoint skipped). */
  warn?(message: string): void;
}

/** How a run treats its folder, and how it is stopped from outside. */
export interface RunControl {
  /** Polled after every step; true writes a checkpoint and stops with FitInterrupted. */
  stopRequested?(): boolean;
  /** A new run may replace another run's files in its folder (otherwise such a folder is refused). */
  overwrite?: boolean;
}

/**
 * The network `o` names, for inputs of `inputShape` and `numClasses` classes, its layers grouped into
 * units of `o.unitLayers`. Throws OptionError, before allocating anything, when the network or a batch
 * of inputs would not fit this machine's memory (or a typed array).
 */
export function buildNetwork(o: RunOptions, inputShape: readonly number[], numClasses: number): Network {
  checkSize(o, inputShape, numClasses);
  return groupUnits(layerUnits(o, inputShape, numClasses), o.unitLayers);
}

/** Elements a single tensor may have (typed arrays and tfjs index with 32-bit integers). */
const MAX_TENSOR = 2 ** 31 - 1;

/** Bytes per parameter while training: the weight, its gradient and Adam's two slots, in float32. */
const TRAINING_BYTES_PER_PARAMETER = 16;

/** Refuses sizes that would overflow a tensor or this machine's memory, naming the flags that set them. */
function checkSize(o: RunOptions, inputShape: readonly number[], numClasses: number): void {
  const features = inputShape.reduce((a, b) => a * b, 1);
  const batch = o.batchSize * features;
  const imageFlags = o.dataset === 'imagefolder' ? '--image-size and --batch-size' : '--batch-size';
  if (batch > MAX_TENSOR) throw new OptionError('batchSize', `a batch of ${o.batchSize} inputs of shape [${inputShape}] has ${batch.toExponential(2)} values, more than a tensor holds (2^31): lower ${imageFlags}`);
  const { largest, total } = parameterEstimate(o, inputShape, numClasses);
  const flags = o.model === 'vit' ? '--width, --layers or --mlp-ratio' : '--width or --layers';
  if (largest > MAX_TENSOR) {
    throw new OptionError('width', `the network's largest weight would have ${largest.toExponential(2)} values, more than a tensor holds (2^31): lower ${flags}`);
  }
  const need = total * TRAINING_BYTES_PER_PARAMETER;
  if (need > os.totalmem()) {
    const gib = (b: number) => (b / 2 ** 30).toFixed(1);
    throw new OptionError('width', `the network has ~${total.toExponential(2)} parameters, ~${gib(need)} GiB to train, and this machine has ${gib(os.totalmem())} GiB: lower ${flags}`);
  }
}

/** Parameters of the network `o` names (weights of its layers and its heads), and its largest weight. */
function parameterEstimate(o: RunOptions, inputShape: readonly number[], numClasses: number): { largest: number; total: number } {
  const channels = inputShape[inputShape.length - 1];
  let largest = 0;
  let total = 0;
  const weight = (values: number, count = 1) => {
    largest = Math.max(largest, values);
    total += values * count;
  };
  let headInputs: number;
  switch (o.model) {
    case 'mlp':
      weight(inputShape.reduce((a, b) => a * b, 1) * o.width);
      weight(o.width * o.width, o.layers - 1);
      headInputs = o.width;
      break;
    case 'convstack':
      weight(9 * channels * o.width);
      weight(9 * o.width * o.width, o.layers - 1);
      headInputs = Math.min(o.projDim ?? 4096, inputShape[0] * inputShape[1] * o.width);
      break;
    case 'vgg11':
      // Its channels are fixed up to --width-mult (at most 4): at most ~37M values per weight.
      return { largest: 0, total: 0 };
    case 'vit':
      weight(o.patchSize * o.patchSize * channels * o.width);
      weight(o.width * o.width, 4 * o.layers);
      weight(Math.round(o.mlpRatio * o.width) * o.width, 2 * o.layers);
      headInputs = o.width;
      break;
  }
  weight(headInputs * numClasses, o.method === 'sll' ? Math.ceil(o.layers / o.unitLayers) : 1);
  return { largest, total };
}

/** One unit per layer (dense, conv [+ BN] + ReLU [+ pool], or transformer block). */
function layerUnits(o: RunOptions, inputShape: readonly number[], numClasses: number): Network {
  const { seed, batchNorm } = o;
  switch (o.model) {
    case 'mlp':
      return buildMlp({ inputShape, numClasses, layers: o.layers, width: o.width, seed, dropout: o.dropout });
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
  try {
    return attachHeads(network, resolveSllStrategy(sllStrategy(o), network.units.length), normalization);
  } catch (e) {
    // Said in flags: the heads' options are the run's (e.g. --proj-dim against the units' sizes).
    if (e instanceof ConfigError && Object.hasOwn(OPTION_TABLE, e.option)) throw new OptionError(e.option, `${flagName(e.option)} ${e.problem}`);
    throw e;
  }
}

/** The trainer of `o`'s method for `model`. */
export function makeTrainer(model: HeadedNetwork, o: RunOptions): Trainer {
  return o.method === 'sll'
    ? new SllTrainer(model, resolveSllStrategy(sllStrategy(o), model.network.units.length), o.epochs)
    : new BpTrainer(model.network, resolveBpStrategy(bpStrategy(o)), o.epochs);
}

/**
 * The data of a run: the named data set, cut to the requested seeded subsets. `warn` hears of a limit
 * above the split's size (the whole split is used) and of an image folder's entries that are not loaded.
 */
export function loadRunData(o: RunOptions, warn: (message: string) => void = console.warn): DataSplits {
  const full = loadDataset(o.dataset, { dataDir: o.dataDir ?? undefined, seed: o.seed, imageSize: o.imageSize, cacheDir: o.cacheDir, warn });
  for (const [limit, split, flag] of [
    [o.trainLimit, full.train, '--train-limit'],
    [o.testLimit, full.test, '--test-limit'],
  ] as const) {
    if (limit !== null && limit > split.size) warn(`${flag} ${limit} is more than the ${split.size} examples of ${split.name}: all of them are used`);
  }
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
 * and the model files. The folder is locked for the run's life (io/run-folder.ts); one holding another
 * run's files is refused unless `control.overwrite`.
 */
export async function runTraining(
  partial: Partial<RunOptions>,
  outDir: string | null,
  callbacks: RunCallbacks = {},
  control: RunControl = {},
): Promise<{ summary: RunSummary; result: FitResult }> {
  const o = absolutePaths(resolveOptions(partial));
  const folder = outDir ? claimRunFolder(outDir, { overwrite: control.overwrite, options: recorded(o), warn: callbacks.warn }) : null;
  try {
    return await fromScratch(o, folder, callbacks, control);
  } finally {
    folder?.release();
  }
}

/** What a resumed run may change: where it runs (backend, broker) and where its data are, not what it trains. */
export const RESUME_OVERRIDES = ['backend', 'dataDir', 'cacheDir', 'broker'] as const;

/** `o` as run.json, checkpoints and summary.json record it: the broker's password left out. */
function recorded(o: RunOptions): Record<string, unknown> {
  return { ...o, broker: o.broker === null ? null : redactBrokerUrl(o.broker) };
}

/** `o` of a resumed run, refused if its broker needs the password its record left out. */
function withBrokerPassword(o: RunOptions): RunOptions {
  if (o.broker !== null && /^rediss?:\/\/[^/@]*:\*\*\*@/.test(o.broker) && !process.env.SLL_BROKER_PASSWORD) {
    throw new OptionError('broker', `the run's broker needs a password, which its record leaves out: give --broker ${o.broker.replace(':***@', ':PASSWORD@')} with --resume (or set SLL_BROKER_PASSWORD)`);
  }
  return o;
}

/** A run's data paths made absolute, so that its recorded options work from any folder. */
export function absolutePaths(o: RunOptions): RunOptions {
  return { ...o, dataDir: o.dataDir === null ? null : path.resolve(o.dataDir), cacheDir: o.cacheDir === null ? null : path.resolve(o.cacheDir) };
}

/** Trains `o` from step 0 (a new model on its data, on its backend) into `folder` (null: no files). */
async function fromScratch(o: RunOptions, folder: RunFolder | null, callbacks: RunCallbacks, control: RunControl): Promise<{ summary: RunSummary; result: FitResult }> {
  await useBackend(o.backend, blasThreads(o));
  const data = loadRunData(o, callbacks.warn);
  return train(o, data, buildModel(o, data.train.shape, data.train.numClasses, normalizationOf(data.train)), folder, null, callbacks, control);
}

/**
 * Continues the run in `outDir` from its newest whole checkpoint of that run, with the options it was
 * started with (`overrides` may change only {@link RESUME_OVERRIDES}: where it runs, where its data now
 * are). Ends as the uninterrupted run would. A run stopped before its first checkpoint (killed in its
 * first epoch) starts again from step 0 with the options its run.json records; a finished run (with its
 * summary.json) is refused: there is nothing left to train.
 */
export async function resumeTraining(
  outDir: string,
  callbacks: RunCallbacks = {},
  control: RunControl = {},
  overrides: Partial<Pick<RunOptions, (typeof RESUME_OVERRIDES)[number]>> = {},
): Promise<{ summary: RunSummary; result: FitResult }> {
  if (!fs.existsSync(outDir)) throw new OptionError('resume', `--resume ${outDir}: no such folder`);
  const changed = Object.keys(overrides).filter((k) => !(RESUME_OVERRIDES as readonly string[]).includes(k));
  if (changed.length > 0) throw new OptionError('resume', `a resumed run keeps its options: only ${RESUME_OVERRIDES.join(', ')} may change, not ${changed.join(', ')}`);
  if (fs.existsSync(path.join(outDir, 'summary.json'))) {
    throw new OptionError('resume', `--resume ${outDir}: that run is finished (its summary.json is written), nothing is left to train; sll evaluate --model-dir ${outDir} scores it again`);
  }
  const folder = claimRunFolder(outDir, { resume: true, warn: callbacks.warn });
  try {
    const warn = callbacks.warn ?? (() => {});
    if (listCheckpoints(outDir).length === 0 && folder.run.run_id !== '' && Object.keys(folder.run.options).length > 0) {
      warn(`${outDir} has no checkpoint yet (the run stopped in its first epoch): training it again from step 0, with the options of its run.json`);
      return await fromScratch(withBrokerPassword(absolutePaths(resolveOptions({ ...recordedOptions(folder.run.options), ...defined(overrides) }))), folder, callbacks, control);
    }
    const checkpoint = readLatestCheckpoint(outDir, warn, folder.run.run_id);
    const o = withBrokerPassword(absolutePaths(resolveOptions({ ...recordedOptions(checkpoint.options), ...defined(overrides) })));
    await useBackend(o.backend, blasThreads(o));
    const data = loadRunData(o, callbacks.warn);
    const resume = { state: checkpoint.state, optimizers: checkpoint.optimizers };
    warn(`resuming ${outDir} from its checkpoint after step ${checkpoint.step} (epoch ${checkpoint.state.epoch + 1}, batch ${checkpoint.state.batch})`);
    return await train(o, data, await loadModel(checkpoint.dir), folder, resume, callbacks, control);
  } finally {
    folder.release();
  }
}

async function train(
  o: RunOptions,
  data: DataSplits,
  model: HeadedNetwork,
  folder: RunFolder | null,
  resume: { state: FitState; optimizers: OptimizerState[] } | null,
  callbacks: RunCallbacks,
  control: RunControl,
): Promise<{ summary: RunSummary; result: FitResult }> {
  callbacks.onData?.(data, o);
  folder?.begin();
  const outDir = folder?.dir ?? null;
  const metricsFile = outDir ? path.join(outDir, 'metrics.jsonl') : null;
  const line = (m: object) => JSON.stringify({ method: o.method, ...m }) + '\n';
  if (metricsFile) writeFileAtomic(metricsFile, (resume?.state.metrics ?? []).map(line).join(''));
  try {
    const start = { step: resume?.state.step ?? 0, stopRequested: control.stopRequested };
    const engine = o.pipeline > 1 ? await startPipeline(model, o, outDir, callbacks.warn ?? (() => {}), start) : new SequentialEngine(makeTrainer(model, o));
    const result = await fit(
      fitSetup(o, model, data, engine),
      {
        ...callbacks,
        onEpochEnd(epoch, metrics, evaluation) {
          if (metricsFile) appendFileChecked(metricsFile, metrics.map(line).join(''));
          callbacks.onEpochEnd?.(epoch, metrics, evaluation);
        },
        onCheckpoint: outDir
          ? async (state, optimizers, steps) => {
              const dir = await writeCheckpoint(outDir, steps, recorded(o), state, model, optimizers, folder!.run.run_id);
              callbacks.onCheckpoint?.(dir, steps);
            }
          : undefined,
      },
      { start: resume ?? undefined, checkpointEvery: o.checkpointEvery, stopRequested: control.stopRequested },
    );
    const evaluation = result.evaluation!;
    const summary: RunSummary = {
      ...(folder?.run.run_id ? { run_id: folder.run.run_id } : {}),
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
      options: recorded(o),
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
  const elastic = o.elasticAlpha > 0 ? { elastic: { alpha: o.elasticAlpha, sigma: o.elasticSigma } } : {};
  const augment = o.cropPadding > 0 || o.flip || o.elasticAlpha > 0 ? { cropPadding: o.cropPadding, flip: o.flip, ...elastic } : null;
  return {
    model,
    engine,
    train: batchSource(data.train, { augment, normalization: model.normalization }),
    validation: batchSource(data.test, { normalization: model.normalization }),
    loop: resolveLoopConfig(loopConfig(o)),
    seed: o.seed,
  };
}

/** How every pipeline stage of a run of `o` trains and where it runs. */
export function stageRun(o: RunOptions, units: number): StageRun {
  return { strategy: resolveSllStrategy(sllStrategy(o), units), epochs: o.epochs, backend: o.backend, threads: blasThreads(o) };
}

/**
 * `o.pipeline` stages over units split evenly or balanced by measured step time: worker threads, or with
 * `o.broker` processes joined by Redis Streams (started here as children of this process, restarted with
 * --resume if they die, unless `o.remoteStages`).
 */
async function startPipeline(
  model: HeadedNetwork,
  o: RunOptions,
  outDir: string | null,
  log: (line: string) => void,
  start: { step: number; stopRequested?: () => boolean },
): Promise<StepEngine> {
  const units = model.network.units.length;
  const run = stageRun(o, units);
  let ranges = evenStages(units, o.pipeline);
  if (o.stages === 'auto') ranges = balancedStages(measureUnitCosts(model, run.strategy, o.batchSize), o.pipeline);
  if (!o.broker) return PipelineEngine.start(model, run, ranges, { stageTimeoutMs: o.stageTimeout * 1000 });
  const name = o.run ?? (outDir ? path.basename(path.resolve(outDir)) : null);
  if (!name) throw new OptionError('run', '--broker needs --run NAME (or --out) to name the run on the broker');
  if (!RUN_NAME.test(name)) {
    throw new OptionError('run', `the run's name on the broker would be --out's folder name "${name}", which holds more than letters, digits, '.', '-' and '_': give --run NAME`);
  }
  const stageDir = (s: number) => path.join(outDir ?? '.', 'stages', `stage-${s + 1}`);
  const cli = fileURLToPath(new URL('../cli/main.js', import.meta.url));
  const local: LocalStages | null = o.remoteStages ? null : { cli, dir: stageDir, log, checkpointEvery: o.checkpointEvery || undefined };
  const transport = await RedisTransport.open(brokerUrlWithPassword(o.broker), name, stageInits(model, run, ranges), { local, log, patienceMs: o.stageTimeout * 1000 });
  if (o.remoteStages) {
    const shown = redactBrokerUrl(o.broker);
    log(`run "${name}" waits for its ${ranges.length} stages on ${shown}; on each machine run:`);
    ranges.forEach((_, s) => log(`  npx sll stage --broker ${shown} --run ${name} --stage ${s + 1} --of ${ranges.length}`));
  }
  const engine = new PipelineEngine(model, transport, ranges, {
    stageTimeoutMs: o.stageTimeout * 1000,
    onStageRestart: (stage, seq) => log(`pipeline ${stage} is back (resumed after message ${seq})`),
  });
  // Stages started by hand may take long to come: a stop request ends the wait.
  let poll: ReturnType<typeof setInterval> | undefined;
  const stopped = new Promise<never>((_, reject) => {
    poll = setInterval(() => start.stopRequested?.() && reject(new FitInterrupted(start.step, false)), 200);
  });
  try {
    await Promise.race([engine.started(), stopped]);
  } catch (e) {
    await engine.dispose(e as Error);
    throw e;
  } finally {
    clearInterval(poll);
  }
  return engine;
}

