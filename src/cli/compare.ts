/** `sll compare DIR...`: saved runs side by side (a table, or one JSON line per run with --json). */
import { compareRuns } from '../io/runs.js';
import { comparisonTable, textTable } from '../report/summary.js';
import type { Command } from './args.js';

export const compareCommand: Command = {
  name: 'compare',
  summary: 'Saved runs side by side: test accuracy (the model\'s and every head\'s), training time, and the options in which the runs differ.',
  usage: '[--json] DIR...',
  positionals: true,
  flags: { json: { kind: 'boolean', description: 'one JSON line per run instead of the table' } },
  async run(values, dirs) {
    compare(dirs, values.json === true);
    return 0;
  },
};

function compare(dirs: string[], json: boolean): void {
  const { runs, differing } = compareRuns(dirs);
  if (json) {
    for (const { dir, summary: s } of runs) {
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
        }),
      );
    }
    return;
  }
  console.log(textTable(comparisonTable({ runs, differing })));
}
