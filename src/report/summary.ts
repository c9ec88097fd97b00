/** The runs side by side as a table: what `sll compare` prints and the report's summary shows. */
import type { RunComparison } from '../io/runs.js';
import { flagName } from '../recipe/options.js';

/** Columns of their own already show these options. */
const SHOWN = new Set(['method', 'model', 'dataset', 'epochs']);

/** A header and one row of cells per run: accuracy, time, the options in which the runs differ, every head. */
export function comparisonTable(comparison: RunComparison): { header: string[]; rows: string[][] } {
  const { runs, differing } = comparison;
  const option = (o: Record<string, unknown>, k: string) => {
    const v = o[k];
    return typeof v === 'string' ? v : JSON.stringify(v);
  };
  const extra = differing.filter((k) => !SHOWN.has(k));
  return {
    header: ['run', 'method', 'model', 'dataset', 'epochs', 'test acc', 'train time', ...extra.map(flagName), 'per head'],
    rows: runs.map(({ dir, summary: s }) => [
      dir,
      s.method,
      s.model,
      s.dataset,
      String(s.epochs),
      `${(100 * s.test_accuracy).toFixed(2)}%`,
      `${s.train_seconds.toFixed(0)} s`,
      ...extra.map((k) => option(s.options, k)),
      s.unit_test_accuracy.map((a) => (a * 100).toFixed(1)).join(' '),
    ]),
  };
}
