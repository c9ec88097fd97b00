/** `sll train`: a run of the recipe, with progress, per-epoch tables, checkpoints, stop signals and resume. */
import * as path from 'node:path';
import { activeBackend } from '../backend.js';
import { DEFAULTS, MODEL_WIDTHS, OPTION_TABLE, OptionError, flagName, resolveOptions, type RunOptions } from '../recipe/options.js';
import { RESUME_OVERRIDES, resumeTraining, runTraining, type RunCallbacks } from '../recipe/run.js';
import { DataError } from '../data/errors.js';
import { WriteError, writeFileAtomic } from '../io/model-files.js';
import { buildReport } from '../report/page.js';
import { DivergenceError } from '../train/divergence.js';
import { FitInterrupted } from '../train/fit.js';
import { StageError } from '../train/pipeline.js';
import type { Command, Flag } from './args.js';
import { ProgressBar, epochTable, pct } from './progress.js';
import { listenForStop } from './signals.js';

/** Every run option as a flag: its kind, values, description and default from the one option table. */
export function runFlags(): Record<string, Flag> {
  return Object.fromEntries(
    (Object.keys(OPTION_TABLE) as (keyof RunOptions)[]).map((k) => {
      const spec = OPTION_TABLE[k];
      // The width's default is the model's.
      const byModel = k === 'width' ? `${MODEL_WIDTHS.mlp} (mlp), ${MODEL_WIDTHS.convstack} (convstack), ${MODEL_WIDTHS.vit} (vit)` : null;
      return [k, { kind: spec.kind, values: spec.values, min: spec.min, description: spec.description, default: spec.kind === 'boolean' ? undefined : (byModel ?? DEFAULTS[k]), group: spec.group }];
    }),
  );
}

export const trainCommand: Command = {
  name: 'train',
  brief: 'train a network with SLL, or the backprop baseline (--method bp); resume a run',
  summary:
    'Trains a network with SLL (or the BP baseline) on a data set and writes OUT/summary.json, metrics.jsonl, the model ' +
    '(model.json + weights.bin, a tfjs model that predicts classes; sll.json + heads.bin) and checkpoints.',
  usage: '[flags] [--out DIR] | --resume DIR [--backend NAME] [--data-dir DIR] [--cache-dir DIR] [--broker URL]',
  flags: {
    ...runFlags(),
    out: { kind: 'path', group: 'output', description: 'the run\'s folder (default runs/<dataset>-<model>-<method>)' },
    resume: { kind: 'path', group: 'output', description: 'continue the run in DIR from its newest whole checkpoint (or from step 0 if it stopped before the first), with its own options (only --backend, --data-dir, --cache-dir, --broker may change)' },
    overwrite: { kind: 'boolean', group: 'output', description: 'a new run may replace another run\'s files in --out (otherwise such a folder is refused)' },
    report: { kind: 'boolean', group: 'output', description: 'at the end, write OUT/report.html (sll report of this run)' },
  },
  notes:
    'The folder is locked while the run lives. Ctrl-C (SIGINT), SIGTERM and SIGHUP stop after the current step with a checkpoint; a second one quits at once.\n' +
    'Exit codes: 0 done; 1 diverged (NaN/Inf; the last good checkpoint is kept), a write failed (e.g. disk full) or an internal error; ' +
    '2 bad input (flags, data, a folder in use or holding another run); 130 / 143 / 129 stopped by SIGINT / SIGTERM / SIGHUP (checkpoint written).',
  async run(values) {
    const { out: outFlag, resume, overwrite, report, ...given } = values as Partial<RunOptions> & { out?: string; resume?: string; overwrite?: boolean; report?: boolean };
    if (resume !== undefined) {
      const other = Object.keys(given).filter((k) => !(RESUME_OVERRIDES as readonly string[]).includes(k));
      // --report only adds a page at the end: allowed with --resume too.
      if (other.length > 0 || outFlag !== undefined || overwrite) {
        const drop = [...other.map(flagName), ...(outFlag !== undefined ? ['--out'] : []), ...(overwrite ? ['--overwrite'] : [])];
        throw new OptionError('resume', `--resume takes the run's options from its checkpoint (only ${RESUME_OVERRIDES.map(flagName).join(', ')} may be given); drop ${drop.join(' ')}`);
      }
    }
    // A resumed run's options are its own (the overrides are checked with them, not alone).
    const o = resume === undefined ? resolveOptions(given) : null;
    if (o?.method === 'bp') {
      // Accepted (a sweep over --method sll,bp shares its flags), but said: BP has no heads or local losses.
      const unused = Object.keys(given).filter((k) => k === 'lambda' || (k !== 'token' && OPTION_TABLE[k as keyof RunOptions]?.group === 'projection heads'));
      if (unused.length > 0) console.error(`sll: ${unused.map(flagName).join(', ')} shape${unused.length > 1 ? '' : 's'} SLL's heads and local losses; --method bp has none and ignores ${unused.length > 1 ? 'them' : 'it'}`);
    }
    const out = resume ?? outFlag ?? path.join('runs', `${o!.dataset}-${o!.model}-${o!.method}`);
    let bar: ProgressBar | null = null;
    let method = o?.method ?? 'sll';
    const signals = listenForStop();
    const callbacks: RunCallbacks = {
      onData: (data, run) => {
        bar = new ProgressBar(run.epochs, run.batchSize);
        method = run.method;
        console.log(`backend: ${activeBackend()}`);
        console.log(`data: ${run.dataset}, ${data.train.size} train / ${data.test.size} test examples, shape [${data.train.shape}]`);
      },
      onEpochBegin: (epoch) => bar!.begin(epoch),
      onBatchEnd: (info) => bar!.update(info),
      onEpochEnd: (_epoch, metrics, evaluation) => console.log(epochTable(metrics, evaluation, method)),
      warn: (message) => console.error(`sll: ${message}`),
    };
    const control = { stopRequested: signals.stopRequested, overwrite: overwrite === true };
    try {
      const { summary } = resume
        ? await resumeTraining(resume, callbacks, control, Object.fromEntries(RESUME_OVERRIDES.filter((k) => given[k] !== undefined).map((k) => [k, given[k]])))
        : await runTraining(o!, out, callbacks, control);
      console.log(
        `${summary.method.toUpperCase()} ${summary.model} on ${summary.dataset}: test accuracy ${pct(summary.test_accuracy)} ` +
          `after ${summary.epochs} epochs, ${summary.train_seconds.toFixed(summary.train_seconds < 10 ? 2 : 1)}s training ` +
          `(${summary.samples_per_second.toFixed(0)} samples/s); wrote ${out}`,
      );
      if (report) {
        const file = path.join(out, 'report.html');
        writeFileAtomic(file, (await buildReport({ runs: [out] })).html);
        console.log(`wrote ${file}`);
      }
      return 0;
    } catch (e) {
      if (e instanceof FitInterrupted) {
        console.error(`sll: ${e.message}; ${e.checkpointed ? 'checkpoint written, ' : ''}continue with: sll train --resume ${out}`);
        return signals.exitCode();
      }
      if (e instanceof DataError && e.checkpointStep !== undefined) {
        console.error(`sll: ${e.message}`);
        console.error(`sll: a checkpoint was written after step ${e.checkpointStep}; fix or remove the file, then: sll train --resume ${out}`);
        return 2;
      }
      if (e instanceof WriteError) {
        console.error(`sll: ${e.message}`);
        console.error(`sll: the last whole checkpoint (if any) is kept; once the cause is fixed: sll train --resume ${out}`);
        return 1;
      }
      if (e instanceof StageError) {
        // A stage or the broker failed: the run continues from its last checkpoint once they are back.
        console.error(`sll: ${e.message}`);
        console.error(`sll: the last whole checkpoint (if any) is kept; once the stage or broker is back: sll train --resume ${out}`);
        return 1;
      }
      if (e instanceof DivergenceError) {
        console.error(`sll: ${e.message}. The last good checkpoint (if any) is kept in ${out}/checkpoints.`);
        return 1;
      }
      throw e;
    } finally {
      signals.dispose();
    }
  },
};
