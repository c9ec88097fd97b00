/** Terminal output of a run: a progress bar per epoch (stderr) and a per-unit table per epoch (stdout). */
import type { BatchInfo, UnitEpochMetrics } from '../train/fit.js';
import type { Evaluation } from '../train/evaluate.js';

export class ProgressBar {
  private started = 0;
  private lastDraw = 0;
  private readonly tty = Boolean(process.stderr.isTTY);

  constructor(
    private readonly epochs: number,
    private readonly batchSize: number,
  ) {}

  begin(): void {
    this.started = performance.now();
    this.lastDraw = 0;
  }

  update(info: BatchInfo): void {
    const now = performance.now();
    const done = info.batch === info.batches;
    // Off a terminal, a line per ~10% keeps logs readable; on one, redraw at most ~5 times a second.
    const every = this.tty ? 200 : Infinity;
    const tenth = Math.max(1, Math.round(info.batches / 10));
    if (!done && (this.tty ? now - this.lastDraw < every : info.batch % tenth !== 0)) return;
    this.lastDraw = now;
    const seconds = (now - this.started) / 1000;
    const rate = (info.batch * this.batchSize) / seconds;
    const eta = ((info.batches - info.batch) * seconds) / info.batch;
    const last = info.running.at(-1)!;
    const width = 24;
    const filled = Math.round((width * info.batch) / info.batches);
    const bar = '='.repeat(filled) + ' '.repeat(width - filled);
    const line =
      `epoch ${info.epoch + 1}/${this.epochs} [${bar}] ${info.batch}/${info.batches} ` +
      `loss ${last.loss.toFixed(4)} acc ${(100 * last.accuracy).toFixed(2)}% ` +
      `${rate.toFixed(0)} samples/s ${done ? `${seconds.toFixed(1)}s` : `eta ${eta.toFixed(0)}s`}`;
    process.stderr.write(this.tty ? `\r${line}${done ? '\n' : ''}` : `${line}\n`);
  }
}

export function epochTable(metrics: UnitEpochMetrics[], evaluation: Evaluation, method: string): string {
  // A learning rate per unit gets a column; one for all stays in the footer.
  const perUnitLr = metrics.some((m) => m.lr !== metrics[0].lr);
  const head = ['unit', 'pred loss', 'align loss', 'loss', 'train acc', 'test acc', 'lambda', ...(perUnitLr ? ['lr'] : [])];
  const rows = metrics.map((m) => [
    method === 'bp' ? 'classifier' : String(m.unit),
    m.prediction_loss.toFixed(4),
    method === 'bp' ? '-' : m.alignment_loss.toFixed(4),
    m.loss.toFixed(4),
    pct(m.train_accuracy),
    pct(m.test_accuracy),
    m.lambda === null ? '-' : String(m.lambda),
    ...(perUnitLr ? [m.lr.toExponential(2)] : []),
  ]);
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const fmt = (r: string[]) => r.map((cell, c) => cell.padStart(widths[c])).join('  ');
  const lines = [fmt(head), ...rows.map(fmt)];
  const footer = `test accuracy ${pct(evaluation.accuracy)}` +
    (evaluation.ensembleAccuracy !== null ? `, ensemble of heads ${pct(evaluation.ensembleAccuracy)}` : '') +
    (perUnitLr ? '' : `, lr ${metrics[0].lr.toExponential(2)}`) + `, epoch ${metrics[0].epoch_seconds.toFixed(1)}s`;
  return [...lines, footer].join('\n');
}

export function pct(x: number): string {
  return `${(100 * x).toFixed(2)}%`;
}
