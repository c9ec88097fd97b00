/** `sll compare DIR...`: saved runs side by side (a table, or one JSON line per run with --json). */
import { compareRuns } from '../io/runs.js';
import { flagName } from '../recipe/options.js';
import type { Command } from './args.js';
import { pct } from './progress.js';

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
  const option = (o: object, k: string) => {
    const v = (o as Record<string, unknown>)[k];
    return typeof v === 'string' ? v : JSON.stringify(v);
  };
  // Columns of their own already show these.
  const shown = new Set(['method', 'model', 'dataset', 'epochs']);
  const extra = differing.filter((k) => !shown.has(k));
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
  const header = ['run', 'method', 'model', 'dataset', 'epochs', 'test acc', 'train time', ...extra.map(flagName), 'per head'];
  const rows = runs.map(({ dir, summary: s }) => [
    dir,
    s.method,
    s.model,
    s.dataset,
    String(s.epochs),
    pct(s.test_accuracy),
    `${s.train_seconds.toFixed(0)} s`,
    ...extra.map((k) => option(s.options, k)),
    s.unit_test_accuracy.map((a) => (a * 100).toFixed(1)).join(' '),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  for (const r of [header, ...rows]) console.log(r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd());
}
