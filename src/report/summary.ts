/** The runs side by side as a table: what `sll compare` prints and the report's summary shows. */
import type { RunComparison } from '../io/runs.js';
import type { UnitEpochMetrics } from '../train/fit.js';
import { flagName } from '../recipe/options.js';
import { gridValueText, type SweepRow } from '../recipe/sweep.js';

/** When a run first reached a test accuracy: its epoch (1-based) and the training seconds up to its end. */
export interface TimeToAccuracy {
  epoch: number;
  seconds: number;
}

/**
 * The first epoch whose model accuracy on the test data reached `target` (0..1), and the training time up to
 * the end of it (the sum of epoch_seconds, evaluation excluded): wall-clock at equal accuracy. The model's
 * accuracy of an epoch is its last unit's (SLL's prediction; BP's classifier is its only unit). null when
 * no epoch reached it.
 */
export function timeToAccuracy(metrics: readonly UnitEpochMetrics[], target: number): TimeToAccuracy | null {
  if (!(target > 0 && target <= 1)) throw new RangeError(`the target accuracy must be in (0, 1], got ${target}`);
  const last = new Map<number, UnitEpochMetrics>();
  for (const m of metrics) if ((last.get(m.epoch)?.unit ?? -1) < m.unit) last.set(m.epoch, m);
  let seconds = 0;
  for (const epoch of [...last.keys()].sort((a, b) => a - b)) {
    const m = last.get(epoch)!;
    seconds += m.epoch_seconds;
    if (m.test_accuracy !== null && m.test_accuracy >= target) return { epoch, seconds };
  }
  return null;
}

/** "epoch 12, 240 s", or "not reached". */
export function timeToAccuracyText(t: TimeToAccuracy | null): string {
  return t ? `epoch ${t.epoch}, ${t.seconds.toFixed(0)} s` : 'not reached';
}

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

/**
 * A sweep's grid points as a table: the grid values (a column per grid flag of any row; '–' where a row's
 * grid lacks it), the other options where rows differ in them, the seeds, the test accuracy as mean ± std
 * over the seeds (percent), each head's mean and the mean training time.
 */
export function sweepTable(rows: readonly SweepRow[]): { header: string[]; rows: string[][] } {
  const names = [...new Set(rows.flatMap((r) => Object.keys(r.point)))];
  const optionNames = [...new Set(rows.flatMap((r) => Object.keys(r.fixed)))];
  const varying = optionNames.filter((k) => new Set(rows.map((r) => JSON.stringify(r.fixed[k]))).size > 1);
  const other = (r: SweepRow) => varying.filter((k) => k in r.fixed).map((k) => `--${k} ${gridValueText(r.fixed[k])}`).join(' ') || '–';
  const pct = (a: number) => (100 * a).toFixed(2);
  return {
    header: [...names, ...(varying.length > 0 ? ['other options'] : []), 'seeds', 'test acc (%)', 'per head (%)', 'train time'],
    rows: rows.map((r) => [
      ...names.map((k) => (k in r.point ? gridValueText(r.point[k]) : '–')),
      ...(varying.length > 0 ? [other(r)] : []),
      String(r.seeds.length),
      r.seeds.length > 1 ? `${pct(r.mean)} ± ${pct(r.std)}` : pct(r.mean),
      r.unitMeans.map((a) => (100 * a).toFixed(1)).join(' '),
      `${r.trainSeconds.toFixed(0)} s`,
    ]),
  };
}

/** A table as aligned plain text (what the CLI prints). */
export function textTable(t: { header: string[]; rows: string[][] }): string {
  const widths = t.header.map((h, i) => Math.max(h.length, ...t.rows.map((r) => r[i].length)));
  return [t.header, ...t.rows].map((r) => r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

/** A table in Markdown (for README and lab notes). */
export function markdownTable(t: { header: string[]; rows: string[][] }): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  return [line(t.header), line(t.header.map(() => '---')), ...t.rows.map(line)].join('\n');
}
