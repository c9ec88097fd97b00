/** `sll compare DIR...`: saved runs side by side (a table, or one JSON line per run with --json). */
import * as fs from 'node:fs';
import { compareRuns } from '../io/runs.js';
import { OptionError } from '../recipe/options.js';
import { readMetrics } from '../report/page.js';
import { comparisonTable, textTable, timeToAccuracy, timeToAccuracyText } from '../report/summary.js';
import type { Command } from './args.js';

export const compareCommand: Command = {
  name: 'compare',
  brief: 'saved runs side by side; when each reached a test accuracy (--target)',
  summary:
    'Saved runs side by side: test accuracy (the model\'s and every head\'s), training time, and the options in which the runs differ; ' +
    'with --target, when each run first reached that test accuracy (wall-clock at equal accuracy).',
  usage: '[--json] [--target ACC] DIR...',
  positionals: true,
  flags: {
    json: { kind: 'boolean', description: 'one JSON line per run instead of the table' },
    target: { kind: 'number', description: 'a test accuracy in (0, 1], e.g. 0.99: also the first epoch that reached it and the training seconds up to its end' },
  },
  async run(values, dirs) {
    const target = values.target as number | undefined;
    if (target !== undefined && !(target > 0 && target <= 1)) throw new OptionError('target', `--target must be a test accuracy in (0, 1], got ${target}`);
    // A shell glob over a sweep's folder (DIR/*) also names its sweep.jsonl and sweep.md: runs are folders.
    const files = dirs.filter((d) => fs.existsSync(d) && !fs.statSync(d).isDirectory());
    if (files.length > 0 && files.length < dirs.length) console.error(`sll: not run folders, left out: ${files.join(', ')}`);
    compare(files.length < dirs.length ? dirs.filter((d) => !files.includes(d)) : dirs, values.json === true, target);
    return 0;
  },
};

function compare(dirs: string[], json: boolean, target: number | undefined): void {
  const { runs, differing } = compareRuns(dirs);
  const reached = target === undefined ? null : runs.map(({ dir }) => timeToAccuracy(readMetrics(dir), target));
  if (json) {
    for (const [i, { dir, summary: s }] of runs.entries()) {
      const options = Object.fromEntries(differing.map((k) => [k, s.options[k]]));
      console.log(
        JSON.stringify({
          dir,
          method: s.method,
          model: s.model,
          dataset: s.dataset,
          epochs: s.epochs,
          test_accuracy: s.test_accuracy,
          unit_test_accuracy: s.unit_test_accuracy,
          ensemble_test_accuracy: s.ensemble_test_accuracy,
          train_seconds: s.train_seconds,
          test_examples: s.test_examples,
          differing_options: options,
          ...(reached ? { target_accuracy: target, epochs_to_target: reached[i]?.epoch ?? null, seconds_to_target: reached[i]?.seconds ?? null } : {}),
        }),
      );
    }
    return;
  }
  const table = comparisonTable({ runs, differing });
  if (reached) {
    table.header.push(`time to ${(100 * target!).toFixed(2)}%`);
    table.rows.forEach((row, i) => row.push(timeToAccuracyText(reached[i])));
  }
  console.log(textTable(table));
}
