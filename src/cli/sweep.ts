/** `sll sweep`: a grid of runs (every combination of the grid's values, each seed) as one resumable command. */
import * as path from 'node:path';
import { writeFileAtomic } from '../io/model-files.js';
import { OptionError, type RunOptions } from '../recipe/options.js';
import { parseGrid, runSweep, summarizeSweep, type SweepSpec } from '../recipe/sweep.js';
import { markdownTable, sweepTable, textTable } from '../report/summary.js';
import { FitInterrupted } from '../train/fit.js';
import type { Command } from './args.js';
import { ProgressBar, pct } from './progress.js';
import { listenForStop } from './signals.js';
import { runFlags } from './train.js';

export const sweepCommand: Command = {
  name: 'sweep',
  brief: 'train a grid of options over seeds: mean ± std per grid point',
  summary:
    'Trains every combination of a grid of options, once per seed, each run in its own folder OUT/<cell>; writes OUT/sweep.jsonl ' +
    '(one line per run) and OUT/sweep.md (mean ± std over seeds per grid point). Run it again to resume: finished runs are skipped, interrupted ones continued. ' +
    'Several sweeps may share OUT (one per core): a run another live sweep is training is left to it, and both files cover every finished run in OUT.',
  usage: "--grid 'NAME=V1,V2,... [NAME=...]' [--seeds S1,S2,...] [train flags] [--out DIR]",
  flags: {
    grid: {
      kind: 'string',
      required: true,
      group: 'sweep',
      description:
        "the options to vary: NAME=V1,V2,... items separated by spaces or ';', NAME a train flag without its dashes (e.g. 'proj-dim=64,128 lr=1e-3,3e-3'); " +
        "a per-unit --lr or --lambda value separates its units with '/'",
    },
    seeds: { kind: 'numbers', group: 'sweep', description: 'the seeds each grid point is trained with, comma-separated (default: --seed, else 0)' },
    out: { kind: 'path', group: 'sweep', description: 'the sweep\'s folder (default runs/sweep-<dataset>-<model>-<method>)' },
    json: { kind: 'boolean', group: 'sweep', description: 'print the table as one JSON line per grid point instead of text (stdout then holds only those lines; progress goes to stderr)' },
    ...runFlags(),
  },
  notes:
    'Every cell\'s options are checked, and every cell folder, before the first run trains: a folder holding a run of other options is refused (exit 2).\n' +
    'Ctrl-C (SIGINT), SIGTERM and SIGHUP stop the running cell after a checkpoint; the same command continues the sweep.\n' +
    'Exit codes: 0 done; 1 a run diverged, a write failed, or an internal error; 2 bad input; 130 / 143 / 129 stopped by a signal.',
  async run(values) {
    const { grid: gridSpec, seeds: seedsFlag, out: outFlag, json, ...given } = values as Partial<RunOptions> & {
      grid: string;
      seeds?: number | number[];
      out?: string;
      json?: boolean;
    };
    if (seedsFlag !== undefined && given.seed !== undefined) throw new OptionError('seeds', 'give --seeds or --seed, not both');
    const seeds = seedsFlag === undefined ? [given.seed ?? 0] : Array.isArray(seedsFlag) ? seedsFlag : [seedsFlag];
    const { seed: _seed, ...base } = given;
    const spec: SweepSpec = { base, grid: parseGrid(gridSpec), seeds };
    // With --json, stdout holds the JSON lines alone; progress goes to stderr.
    const log = json ? (line: string) => console.error(line) : (line: string) => console.log(line);
    const o = { dataset: given.dataset ?? 'mnist', model: given.model ?? 'mlp', method: given.method ?? 'sll' };
    const out = outFlag ?? path.join('runs', `sweep-${o.dataset}-${o.model}-${o.method}`);
    const signals = listenForStop();
    try {
      const result = await runSweep(
        spec,
        out,
        {
          onCell(cell, i, total, status) {
            const what = { skipped: 'finished before, skipped', resumed: 'resuming', trained: 'training', busy: 'being trained by another process, left to it' }[status];
            log(`cell ${i + 1}/${total} ${cell.name}: ${what}`);
          },
          runCallbacks(cell) {
            const bar = new ProgressBar(cell.options.epochs, cell.options.batchSize);
            return {
              onEpochBegin: (epoch) => bar.begin(epoch),
              onBatchEnd: (info) => bar.update(info),
              onEpochEnd: (epoch, metrics, evaluation) => {
                const heads = metrics.map((m) => (m.test_accuracy === null ? '-' : (100 * m.test_accuracy).toFixed(2))).join(' ');
                log(`  epoch ${epoch + 1}/${cell.options.epochs}: test ${evaluation ? pct(evaluation.accuracy) : '-'} (heads ${heads}), ${metrics[0].epoch_seconds.toFixed(1)}s`);
              },
              warn: (message) => console.error(`sll: ${message}`),
            };
          },
          onCellEnd(r) {
            if (r.status !== 'skipped') log(`  ${r.cell}: test accuracy ${pct(r.test_accuracy)}, ${r.train_seconds.toFixed(1)}s training`);
          },
        },
        { stopRequested: signals.stopRequested },
      );
      const table = sweepTable(result.rows);
      // sweep.md covers every finished cell in OUT, of this sweep and of any other sharing the folder.
      writeFileAtomic(path.join(out, 'sweep.md'), markdownTable(sweepTable(summarizeSweep(result.recorded))) + '\n');
      if (json) {
        for (const r of result.rows) {
          console.log(JSON.stringify({ ...r.point, seeds: r.seeds, test_accuracy_mean: r.mean, test_accuracy_std: r.std, unit_test_accuracy_mean: r.unitMeans, train_seconds_mean: r.trainSeconds }));
        }
      } else {
        console.log(textTable(table));
      }
      if (result.busy.length > 0) {
        log(`${result.busy.length} cell(s) were being trained by another process (${result.busy.map((c) => c.name).join(', ')}): they join ${path.join(out, 'sweep.jsonl')} when it finishes them`);
      }
      log(`wrote ${path.join(out, 'sweep.jsonl')} and ${path.join(out, 'sweep.md')}`);
      return 0;
    } catch (e) {
      if (e instanceof FitInterrupted) {
        console.error(`sll: ${e.message}; checkpoint written, continue the sweep with the same command`);
        return signals.exitCode();
      }
      throw e;
    } finally {
      signals.dispose();
    }
  },
};
