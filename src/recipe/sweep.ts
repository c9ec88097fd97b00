/**
 * Grids of runs as one call (Node): every combination of the grid's values and the seeds is a run of its
 * own in DIR/<cell>, trained as `runTraining` trains. A sweep can be stopped and started again at will: a
 * finished cell (summary.json) is skipped, an interrupted one resumed from its newest checkpoint, and a cell
 * folder holding a run of other options is refused rather than reused. Several sweeps may share DIR (say,
 * one per core): a cell another live process is training is left to it, and DIR/sweep.jsonl, written under
 * a lock, holds one line per finished cell of every sweep there; `summarizeSweep` gives the mean and
 * standard deviation over seeds of each grid point.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckpointError, listCheckpoints } from '../io/checkpoint.js';
import { writeFileAtomic } from '../io/model-files.js';
import { RunFolderError, otherLiveHolder, readRunRecord, withFileLock } from '../io/run-folder.js';
import { readRunSummary, type RunSummary } from '../io/runs.js';
import { DEFAULTS, OPTION_TABLE, OptionError, flagName, resolveOptions, type RunOptions } from './options.js';
import { absolutePaths, resumeTraining, runTraining, type RunCallbacks, type RunControl } from './run.js';

/** One axis of a grid: a run option and the values it takes, in order. */
export interface GridAxis {
  option: keyof RunOptions;
  values: unknown[];
}

/** What a sweep runs: the options every cell shares, the grid, and the seeds each grid point is run with. */
export interface SweepSpec {
  base: Partial<RunOptions>;
  grid: GridAxis[];
  /** Each grid point is trained once per seed (`--seed`). */
  seeds: number[];
}

/** One run of a sweep. */
export interface SweepCell {
  /** The folder's name: the grid values and the seed, e.g. `proj-dim=64,seed=0`. */
  name: string;
  dir: string;
  /** The grid point, by flag name without dashes (`{ 'proj-dim': 64 }`). */
  point: Record<string, unknown>;
  seed: number;
  /** The cell's whole, checked options. */
  options: RunOptions;
}

/** How a cell was brought to its end in this call. */
export type CellStatus = 'trained' | 'resumed' | 'skipped';

/** A finished cell: a line of DIR/sweep.jsonl. */
export interface SweepCellResult {
  cell: string;
  dir: string;
  point: Record<string, unknown>;
  /**
   * The cell's other options that are not the defaults (by flag name, execution options aside): what
   * tells cells of one grid point apart when sweeps of other flags share the folder. Absent in lines of
   * older versions.
   */
  fixed?: Record<string, unknown>;
  seed: number;
  status: CellStatus;
  test_accuracy: number;
  unit_test_accuracy: number[];
  ensemble_test_accuracy: number | null;
  train_seconds: number;
  epochs: number;
}

/** A grid point (and setting of the other options) over its seeds. */
export interface SweepRow {
  point: Record<string, unknown>;
  /** The other options of the point's cells (see SweepCellResult.fixed). */
  fixed: Record<string, unknown>;
  seeds: number[];
  /** Mean and sample standard deviation (n - 1; 0 for one seed) of the test accuracy, 0..1. */
  mean: number;
  std: number;
  /** Mean test accuracy of each head (SLL) or of the classifier (BP), 0..1. */
  unitMeans: number[];
  /** Mean training time, seconds. */
  trainSeconds: number;
}

/** The cells of a sweep, in the order they run. */
export interface SweepResult {
  /** This grid's finished cells (a cell another process was training is not among them). */
  cells: SweepCellResult[];
  rows: SweepRow[];
  /** The cells of this grid that another live process was training, left to it. */
  busy: SweepCell[];
  /** Every line DIR/sweep.jsonl now holds: the finished cells of every sweep into DIR. */
  recorded: SweepCellResult[];
}

/** What a sweep tells its front end. */
export interface SweepCallbacks {
  /** Cell `index` (0-based) of `total` starts ('trained' from scratch, 'resumed'), is skipped as finished, or is left to the live process training it ('busy'). */
  onCell?(cell: SweepCell, index: number, total: number, status: CellStatus | 'busy'): void;
  /** The callbacks of the cell's run (progress, warnings). */
  runCallbacks?(cell: SweepCell): RunCallbacks;
  /** A cell ended (or was found finished); the sweep waits for what it returns before the next cell. */
  onCellEnd?(result: SweepCellResult): void | Promise<void>;
}

/** Options a grid may not vary: the seed has --seeds; the rest name one run on a broker. */
const NOT_IN_GRID = new Set<keyof RunOptions>(['seed', 'broker', 'run', 'remoteStages']);

/** Where a cell runs and how it reports, not what it computes: a finished cell is reused whatever these were. */
const EXECUTION_ONLY = new Set<keyof RunOptions>([
  ...(Object.keys(OPTION_TABLE) as (keyof RunOptions)[]).filter((k) => OPTION_TABLE[k].group === 'execution'),
  'cacheDir',
]);

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/**
 * Parses a grid: `name=v1,v2,...` items separated by spaces or ';', each name a run option as its flag is
 * written without the dashes (`proj-dim=64,128,256 lr=1e-3,3e-3`). A per-unit value of `--lr` or
 * `--lambda` separates its units with '/' (`lambda=1/0.5/0.25,1`). Throws OptionError for an unknown
 * option, one given twice, one a grid may not vary (seed: use the seeds), no values, a value given twice,
 * or a value that is not of the option's kind.
 */
export function parseGrid(spec: string): GridAxis[] {
  const byFlag = new Map((Object.keys(OPTION_TABLE) as (keyof RunOptions)[]).map((k) => [flagName(k).slice(2), k]));
  const items = spec.split(/[\s;]+/).filter((s) => s !== '');
  if (items.length === 0) throw new OptionError('grid', '--grid needs at least one NAME=V1,V2,... (e.g. --grid proj-dim=64,128)');
  const axes: GridAxis[] = [];
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new OptionError('grid', `--grid: '${item}' is not NAME=V1,V2,... (e.g. proj-dim=64,128)`);
    const name = item.slice(0, eq).replace(/^--/, '');
    const option = byFlag.get(name);
    if (option === undefined) throw new OptionError('grid', `--grid: unknown option '${name}' (sll train --help lists them, without the dashes)`);
    const raw = item.slice(eq + 1).split(',');
    if (raw.some((v) => v === '')) throw new OptionError('grid', `--grid: ${name} has an empty value in '${item}'`);
    axes.push({ option, values: raw.map((v) => gridValue(option, name, v)) });
    checkGrid(axes);
  }
  return axes;
}

/** Throws OptionError for a grid axis of an unknown option, one a grid may not vary, one given twice, or a value listed twice. */
export function checkGrid(axes: readonly GridAxis[]): void {
  axes.forEach(({ option, values }, i) => {
    if (!(option in OPTION_TABLE)) throw new OptionError('grid', `--grid: unknown option '${String(option)}'`);
    const name = flagName(option).slice(2);
    if (NOT_IN_GRID.has(option)) {
      throw new OptionError('grid', option === 'seed' ? '--grid: vary the seed with --seeds 0,1,2, not in the grid' : `--grid: ${name} names one run and cannot vary in a sweep`);
    }
    if (axes.findIndex((a) => a.option === option) !== i) throw new OptionError('grid', `--grid: ${name} is given twice`);
    if (values.length === 0) throw new OptionError('grid', `--grid: ${name} has no values`);
    const keys = values.map((v) => JSON.stringify(v));
    const twice = keys.find((k, j) => keys.indexOf(k) !== j);
    if (twice !== undefined) throw new OptionError('grid', `--grid: ${name} lists ${twice} twice`);
  });
}

function gridValue(option: keyof RunOptions, name: string, raw: string): unknown {
  const spec = OPTION_TABLE[option];
  const number = (s: string) => {
    if (!NUMBER.test(s)) throw new OptionError('grid', `--grid: ${name} takes numbers, got '${s}'`);
    return Number(s);
  };
  switch (spec.kind) {
    case 'int':
    case 'number':
      if (spec.nullable && (raw === 'none' || raw === 'auto')) return null;
      return number(raw);
    case 'numbers': {
      const list = raw.split('/').map(number);
      return list.length === 1 ? list[0] : list;
    }
    case 'boolean':
      if (raw !== 'true' && raw !== 'false') throw new OptionError('grid', `--grid: ${name} takes true or false, got '${raw}'`);
      return raw === 'true';
    case 'string':
      if (spec.values && !spec.values.includes(raw)) throw new OptionError('grid', `--grid: ${name} must be one of ${spec.values.join(', ')}, got '${raw}'`);
      return raw;
    case 'path':
      return raw;
  }
}

/** A value as a folder name and a table cell show it (per-unit lists joined by '/'). */
export function gridValueText(v: unknown): string {
  return Array.isArray(v) ? v.join('/') : String(v);
}

/**
 * Every cell of `spec` under `outDir`, grid points in order (the first axis slowest), each with every
 * seed. Each cell's options are checked here, so a bad combination fails before any training (OptionError
 * naming the cell).
 */
export function sweepCells(spec: SweepSpec, outDir: string): SweepCell[] {
  if (spec.seeds.length === 0) throw new OptionError('seeds', '--seeds needs at least one seed');
  for (const s of spec.seeds) {
    if (!Number.isSafeInteger(s) || s < 0) throw new OptionError('seeds', `--seeds must be integers >= 0, got ${s}`);
  }
  if (new Set(spec.seeds).size !== spec.seeds.length) throw new OptionError('seeds', `--seeds lists a seed twice: ${spec.seeds.join(',')}`);
  checkGrid(spec.grid);
  if (spec.base.seed !== undefined) throw new OptionError('seed', 'a sweep\'s base options hold no seed: the seeds are given as seeds');
  const both = spec.grid.find((axis) => spec.base[axis.option] !== undefined);
  if (both !== undefined) throw new OptionError(both.option, `${flagName(both.option)} is given as a flag and varies in --grid: give one`);
  let points: { values: Partial<RunOptions>; point: Record<string, unknown> }[] = [{ values: {}, point: {} }];
  for (const axis of spec.grid) {
    const name = flagName(axis.option).slice(2);
    points = points.flatMap((p) => axis.values.map((v) => ({ values: { ...p.values, [axis.option]: v }, point: { ...p.point, [name]: v } })));
  }
  const cells = points.flatMap(({ values, point }) =>
    spec.seeds.map((seed) => {
      const name = [...Object.entries(point).map(([k, v]) => `${k}=${gridValueText(v)}`), `seed=${seed}`].join(',').replace(/[^\w.=,+-]/g, '_');
      let options: RunOptions;
      try {
        options = absolutePaths(resolveOptions({ ...spec.base, ...values, seed }));
      } catch (e) {
        if (e instanceof OptionError) throw new OptionError(e.option, `sweep cell ${name}: ${e.message}`);
        throw e;
      }
      return { name, dir: path.join(outDir, name), point, seed, options };
    }),
  );
  const names = cells.map((c) => c.name);
  const clash = names.find((n, i) => names.indexOf(n) !== i);
  if (clash !== undefined) throw new OptionError('grid', `--grid: two cells would share the folder ${clash} (values that differ only in characters a folder name cannot hold)`);
  return cells;
}

/** The options in which a recorded run differs from the cell's (execution options aside), as "--flag a vs b". */
function optionDifferences(recorded: Record<string, unknown>, cell: RunOptions): string[] {
  // Older versions recorded --data-dir as given, maybe relative (to the folder the sweep ran in, as here).
  if (typeof recorded.dataDir === 'string') recorded = { ...recorded, dataDir: path.resolve(recorded.dataDir) };
  return (Object.keys(OPTION_TABLE) as (keyof RunOptions)[])
    .filter((k) => !EXECUTION_ONLY.has(k) && k in recorded && JSON.stringify(recorded[k]) !== JSON.stringify(cell[k]))
    .map((k) => `${flagName(k)} ${JSON.stringify(recorded[k])} there, ${JSON.stringify(cell[k])} here`);
}

function refuseOther(cell: SweepCell, recorded: Record<string, unknown>): void {
  const diff = optionDifferences(recorded, cell.options);
  if (diff.length > 0) {
    throw new OptionError(
      'out',
      `sweep cell ${cell.dir} holds a run of other options (${diff.join('; ')}): give the sweep another --out, or remove that folder`,
    );
  }
}

/** `o`'s options that are not the defaults, by flag name, but for the seed, execution options and those in `point`. */
function fixedOptions(o: RunOptions, point: Record<string, unknown>): Record<string, unknown> {
  const fixed: Record<string, unknown> = {};
  for (const k of Object.keys(OPTION_TABLE) as (keyof RunOptions)[]) {
    const name = flagName(k).slice(2);
    if (k === 'seed' || EXECUTION_ONLY.has(k) || name in point || JSON.stringify(o[k]) === JSON.stringify(DEFAULTS[k])) continue;
    fixed[name] = o[k];
  }
  return fixed;
}

function cellResult(cell: SweepCell, summary: RunSummary, status: CellStatus): SweepCellResult {
  return {
    cell: cell.name,
    dir: cell.dir,
    point: cell.point,
    fixed: fixedOptions(cell.options, cell.point),
    seed: cell.seed,
    status,
    test_accuracy: summary.test_accuracy,
    unit_test_accuracy: summary.unit_test_accuracy,
    ensemble_test_accuracy: summary.ensemble_test_accuracy,
    train_seconds: summary.train_seconds,
    epochs: summary.epochs,
  };
}

/**
 * Runs every cell of `spec` under `outDir`, one after another: a finished cell is skipped, an interrupted
 * one resumed, one that another live process is training left to it ('busy'), the others trained.
 * DIR/sweep.jsonl is rewritten after each cell (see {@link recordCells}). A stop request (`control.stopRequested`) checkpoints the running cell and rejects with
 * FitInterrupted; the same call again carries on. Throws OptionError before training anything when a cell's
 * options are bad or a cell folder holds a run of other options.
 */
export async function runSweep(spec: SweepSpec, outDir: string, callbacks: SweepCallbacks = {}, control: Pick<RunControl, 'stopRequested'> = {}): Promise<SweepResult> {
  const cells = sweepCells(spec, outDir);
  const runFile = ['run.json', 'summary.json'].find((f) => fs.existsSync(path.join(outDir, f)));
  if (runFile) throw new OptionError('out', `--out ${outDir} holds a run (${runFile}): a sweep writes its cells into a folder of its own`);
  // Every folder is checked before the first cell trains: a clash found after hours of training helps no one.
  const inspect = (cell: SweepCell): { summary: RunSummary | null; started?: boolean } => {
    const summaryFile = path.join(cell.dir, 'summary.json');
    if (fs.existsSync(summaryFile)) {
      const summary = readRunSummary(cell.dir);
      refuseOther(cell, summary.options);
      return { summary };
    }
    const record = fs.existsSync(cell.dir) ? readRunRecord(cell.dir) : null;
    if (record) refuseOther(cell, record.options);
    return { summary: null, started: record !== null && listCheckpoints(cell.dir).length > 0 };
  };
  cells.forEach(inspect);
  fs.mkdirSync(outDir, { recursive: true });
  const results: SweepCellResult[] = [];
  const busy: SweepCell[] = [];
  for (const [i, cell] of cells.entries()) {
    const leaveBusy = () => {
      callbacks.onCell?.(cell, i, cells.length, 'busy');
      busy.push(cell);
    };
    // Another sweep took the cell between the check below and the start of training here.
    const takenMeanwhile = (e: unknown) => e instanceof RunFolderError && otherLiveHolder(cell.dir) !== null;
    // Looked at again when its turn comes: another sweep into DIR may have finished or started it meanwhile.
    const state = inspect(cell);
    let result: SweepCellResult;
    if (!state.summary && otherLiveHolder(cell.dir)) {
      leaveBusy();
      continue;
    }
    if (state.summary) {
      callbacks.onCell?.(cell, i, cells.length, 'skipped');
      result = cellResult(cell, state.summary, 'skipped');
    } else {
      const run = callbacks.runCallbacks?.(cell) ?? {};
      let summary: RunSummary | null = null;
      if (state.started) {
        try {
          callbacks.onCell?.(cell, i, cells.length, 'resumed');
          summary = (await resumeTraining(cell.dir, run, control, { backend: cell.options.backend })).summary;
          result = cellResult(cell, summary, 'resumed');
        } catch (e) {
          if (takenMeanwhile(e)) {
            leaveBusy();
            continue;
          }
          // Checkpoints, but none whole: the cell starts again.
          if (!(e instanceof CheckpointError)) throw e;
          run.warn?.(`${cell.dir}: ${e.message}; training the cell from the start`);
        }
      }
      if (!summary) {
        if (!state.started) callbacks.onCell?.(cell, i, cells.length, 'trained');
        try {
          // The folder holds nothing, or a start of this same cell: replacing it loses nothing.
          summary = (await runTraining(cell.options, cell.dir, run, { ...control, overwrite: true })).summary;
        } catch (e) {
          if (!takenMeanwhile(e)) throw e;
          leaveBusy();
          continue;
        }
        result = cellResult(cell, summary, 'trained');
      }
    }
    results.push(result!);
    recordCells(outDir, results);
    await callbacks.onCellEnd?.(result!);
  }
  const recorded = recordCells(outDir, results);
  return { cells: results, rows: summarizeSweep(results), busy, recorded };
}

/**
 * Writes DIR/sweep.jsonl, under DIR/.sweep-lock so that sweeps sharing DIR do not overwrite each other's
 * lines: the lines already there whose cell folder still holds a finished run (a line of `cells` replacing
 * its cell's in place), then the rest of `cells`. Returns what it wrote.
 */
export function recordCells(outDir: string, cells: readonly SweepCellResult[]): SweepCellResult[] {
  const file = path.join(outDir, 'sweep.jsonl');
  return withFileLock(path.join(outDir, '.sweep-lock'), () => {
    const mine = new Map(cells.map((c) => [c.cell, c]));
    const lines: SweepCellResult[] = [];
    const text = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    for (const line of text.split('\n')) {
      let r: SweepCellResult;
      try {
        r = JSON.parse(line) as SweepCellResult;
      } catch {
        continue;
      }
      if (typeof r?.cell !== 'string' || lines.some((l) => l.cell === r.cell)) continue;
      if (mine.has(r.cell)) lines.push(mine.get(r.cell)!);
      else if (fs.existsSync(path.join(outDir, r.cell, 'summary.json'))) lines.push(r);
    }
    for (const c of cells) if (!lines.some((l) => l.cell === c.cell)) lines.push(c);
    writeFileAtomic(file, lines.map((r) => JSON.stringify(r) + '\n').join(''));
    return lines;
  });
}

/** Mean and sample standard deviation (n - 1; 0 for one value). */
export function meanStd(values: readonly number[]): { mean: number; std: number } {
  if (values.length === 0) throw new RangeError('meanStd of no values');
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  if (values.length === 1) return { mean, std: 0 };
  const ss = values.reduce((a, v) => a + (v - mean) ** 2, 0);
  return { mean, std: Math.sqrt(ss / (values.length - 1)) };
}

/**
 * The cells grouped by grid point and other options (in the order they first appear), each with its mean
 * ± std over seeds: cells that differ in an option outside the grid are never averaged together.
 */
export function summarizeSweep(cells: readonly SweepCellResult[]): SweepRow[] {
  const groups = new Map<string, SweepCellResult[]>();
  for (const c of cells) {
    const key = JSON.stringify([c.point, c.fixed ?? {}]);
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key)!.push(c);
  }
  return [...groups.values()].map((group) => {
    const { mean, std } = meanStd(group.map((c) => c.test_accuracy));
    const heads = Math.min(...group.map((c) => c.unit_test_accuracy.length));
    return {
      point: group[0].point,
      fixed: group[0].fixed ?? {},
      seeds: group.map((c) => c.seed),
      mean,
      std,
      unitMeans: Array.from({ length: heads }, (_, u) => meanStd(group.map((c) => c.unit_test_accuracy[u])).mean),
      trainSeconds: meanStd(group.map((c) => c.train_seconds)).mean,
    };
  });
}
