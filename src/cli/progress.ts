/** Terminal output of a run: a progress bar per epoch (stderr) and a per-unit table per epoch (stdout). */
import type { BatchInfo, UnitEpochMetrics } from '../train/fit.js';
import type { Evaluation } from '../train/evaluate.js';

/**
 * One line of progress per epoch on stderr: batches done, running loss and accuracy, speed, and the time
 * left in the epoch and in the whole run (from the wall time per step so far, evaluations included).
 */
export class ProgressBar {
  private started = 0;
  private lastDraw = 0;
  private epoch = 0;
  /** Batches of this epoch done before this session (resumed inside the epoch): not part of its rate. */
  private before: number | null = null;
  /** Wall-clock start of this session's first epoch, and the steps done since. */
  private runStarted = 0;
  private runSteps = 0;
  private readonly tty = Boolean(process.stderr.isTTY);

  constructor(
    private readonly epochs: number,
    private readonly batchSize: number,
  ) {}

  begin(epoch: number): void {
    this.started = performance.now();
    if (this.runStarted === 0) this.runStarted = this.started;
    this.lastDraw = 0;
    this.epoch = epoch;
    this.before = null;
  }

  update(info: BatchInfo): void {
    this.runSteps++;
    this.before ??= info.batch - 1;
    const now = performance.now();
    const batches = info.batches;
    const done = batches !== null && info.batch === batches;
    // Off a terminal, a line per ~10% keeps logs readable; on one, redraw at most ~5 times a second.
    const tenth = Math.max(1, Math.round((batches ?? 100) / 10));
    if (!done && (this.tty ? now - this.lastDraw < 200 : info.batch % tenth !== 0)) return;
    this.lastDraw = now;
    const seconds = (now - this.started) / 1000;
    const here = info.batch - this.before;
    const rate = (here * this.batchSize) / seconds;
    const last = info.running.at(-1)!;
    const width = 24;
    const filled = batches ? Math.round((width * info.batch) / batches) : 0;
    const bar = batches ? `[${'='.repeat(filled)}${' '.repeat(width - filled)}] ${info.batch}/${batches}` : `batch ${info.batch}`;
    let time = `${seconds.toFixed(1)}s`;
    if (!done && batches) {
      const epochEta = ((batches - info.batch) * seconds) / here;
      const perStep = (now - this.runStarted) / 1000 / this.runSteps;
      const runEta = ((this.epochs - this.epoch - 1) * batches + batches - info.batch) * perStep;
      time = `eta ${duration(epochEta)} (run: ${duration(runEta)} left)`;
    }
    const line =
      `epoch ${this.epoch + 1}/${this.epochs} ${bar} ` +
      `loss ${last.loss.toFixed(4)} acc ${(100 * last.accuracy).toFixed(2)}% ${rate.toFixed(0)} samples/s ${time}`;
    process.stderr.write(this.tty ? `\r${line}${done ? '\n' : ''}` : `${line}\n`);
  }
}

/** 75 -> '1m15s', 3700 -> '1h01m'. */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** The per-unit table printed after each epoch. */
export function epochTable(metrics: UnitEpochMetrics[], evaluation: Evaluation | null, method: string): string {
  // A learning rate per unit gets a column; one for all stays in the footer.
  const perUnitLr = metrics.some((m) => m.lr !== metrics[0].lr);
  const head = ['unit', 'pred loss', 'align loss', 'loss', 'train acc', 'test acc', 'lambda', ...(perUnitLr ? ['lr'] : [])];
  const rows = metrics.map((m) => [
    method === 'bp' ? 'classifier' : String(m.unit),
    m.prediction_loss.toFixed(4),
    method === 'bp' ? '-' : m.alignment_loss.toFixed(4),
    m.loss.toFixed(4),
    pct(m.train_accuracy),
    m.test_accuracy === null ? '-' : pct(m.test_accuracy),
    m.lambda === null ? '-' : String(m.lambda),
    ...(perUnitLr ? [m.lr.toExponential(2)] : []),
  ]);
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  const fmt = (r: string[]) => r.map((cell, c) => cell.padStart(widths[c])).join('  ');
  const lines = [fmt(head), ...rows.map(fmt)];
  const footer = (evaluation ? `test accuracy ${pct(evaluation.accuracy)}` : 'no test data') +
    (evaluation?.ensembleAccuracy != null ? `, ensemble of heads ${pct(evaluation.ensembleAccuracy)}` : '') +
    (perUnitLr ? '' : `, lr ${metrics[0].lr.toExponential(2)}`) + `, epoch ${metrics[0].epoch_seconds.toFixed(1)}s`;
  return [...lines, footer].join('\n');
}

/** 0.9898 -> '98.98%'. */
export function pct(x: number): string {
  return `${(100 * x).toFixed(2)}%`;
}
