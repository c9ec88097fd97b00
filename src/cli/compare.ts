/** `sll compare DIR...`: saved runs side by side (a table, or one JSON line per run with --json). */
import { parseArgs } from 'node:util';
import { compareRuns } from '../io/runs.js';
import { flagName, OptionError } from '../options.js';
import { pct } from './progress.js';

export function compareCommand(argv: string[]): void {
  let parsed: { values: { json?: boolean }; positionals: string[] };
  try {
    parsed = parseArgs({ args: argv, strict: true, allowPositionals: true, options: { json: { type: 'boolean', default: false } } });
  } catch (e) {
    throw new OptionError('argv', `${(e as Error).message.split('\n')[0]}\nusage: sll compare DIR... [--json]`);
  }
  const { runs, differing } = compareRuns(parsed.positionals);
  const option = (o: object, k: string) => {
    const v = (o as Record<string, unknown>)[k];
    return typeof v === 'string' ? v : JSON.stringify(v);
  };
  // Columns of their own already show these.
  const shown = new Set(['method', 'model', 'dataset', 'epochs']);
  const extra = differing.filter((k) => !shown.has(k));
  if (parsed.values.json) {
    for (const { dir, summary: s } of runs) {
      const options = Object.fromEntries(differing.map((k) => [k, (s.options as unknown as Record<string, unknown>)[k]]));
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
