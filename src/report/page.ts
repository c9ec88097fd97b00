/**
 * `sll report`: saved runs and memory measurements as one self-contained HTML page (charts as inline SVG,
 * no script, no external URL): the runs side by side, per-unit curves of every run overlaid (paper Fig.
 * 3b, 4a), memory against depth (Fig. 2), and final accuracy against the one option the runs vary (Fig. 4b/4c).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DataError } from '../data/errors.js';
import * as tf from '@tensorflow/tfjs';
import { batchSource } from '../data/source.js';
import { subset } from '../data/subset.js';
import { loadModel, missingRunFile } from '../io/model-files.js';
import { compareRuns, type RunComparison } from '../io/runs.js';
import { flagName, recordedOptions, resolveOptions, type RunOptions } from '../recipe/options.js';
import { loadRunData } from '../recipe/run.js';
import { disposeHeaded } from '../train/model.js';
import type { UnitEpochMetrics } from '../train/fit.js';
import { ablationSpec, ckaSpec, curvesSpec, embeddingSpec, histogramSpec, memoryRatio, memorySpec, renderSvg, type AblationPoint, type MemoryRow } from './charts.js';
import { representations, sharedHistograms, type Representations } from './representations.js';
import { comparisonTable } from './summary.js';

/** What a report shows. */
export interface ReportInput {
  /** Folders written by `sll train`. */
  runs: readonly string[];
  /** Files of `sll bench memory --json` lines. */
  memory?: readonly string[];
  /**
   * Held-out examples (a seeded, class-stratified subset of each run's test set) for the representations and the
   * activation histograms (default 1000; 0 leaves those sections out). Needs a tfjs backend in place.
   */
  examples?: number;
}

/** The numbers a report states, for a caller (and tests) to check against the files they came from. */
export interface ReportFacts {
  /** Per run (in order), its final test accuracy. */
  testAccuracy: number[];
  /** Per memory file and measure, BP over SLL at the largest depth both measured. */
  memoryRatios: { file: string; model: string; measure: string; depth: number; ratio: number }[];
  /** The option the ablation chart varies, if any. */
  ablation: string | null;
  /** Per run, the linear CKA of each unit's output with the input (empty without representations). */
  cka: number[][];
}

/** The lines of DIR/metrics.jsonl. */
export function readMetrics(dir: string): UnitEpochMetrics[] {
  const file = path.join(dir, 'metrics.jsonl');
  if (!fs.existsSync(file)) throw new DataError(missingRunFile(dir, 'metrics.jsonl'));
  return parseJsonLines<UnitEpochMetrics>(file, ['epoch', 'unit', 'train_accuracy']);
}

/** The rows of a `sll bench memory --json` file. */
export function readMemoryRows(file: string): MemoryRow[] {
  if (!fs.existsSync(file)) throw new DataError(`memory file ${file} not found (write one with sll bench memory --json > FILE)`);
  return parseJsonLines<MemoryRow>(file, ['method', 'depth', 'peak_bytes', 'activation_peak_bytes']);
}

function parseJsonLines<T>(file: string, required: readonly string[]): T[] {
  const rows: T[] = [];
  fs.readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (line.trim() === '') return;
      let row: Record<string, unknown>;
      try {
        row = JSON.parse(line) as Record<string, unknown>;
      } catch (e) {
        throw new DataError(`${file}: line ${i + 1} is not JSON (${(e as Error).message})`);
      }
      const missing = required.filter((k) => row === null || typeof row !== 'object' || !(k in row));
      if (missing.length > 0) throw new DataError(`${file}: line ${i + 1} lacks ${missing.join(', ')}`);
      rows.push(row as T);
    });
  if (rows.length === 0) throw new DataError(`${file} holds no rows`);
  return rows;
}

/** The option (besides method) whose value differs between the runs, when there is exactly one. */
function ablationOption(comparison: RunComparison): string | null {
  const varying = comparison.differing.filter((k) => k !== 'method' && k !== 'seed');
  return varying.length === 1 && comparison.runs.length >= 2 ? varying[0] : null;
}

const escape = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** Builds the report page. Throws DataError (naming the file) for a run or memory file it cannot read. */
export async function buildReport(input: ReportInput): Promise<{ html: string; facts: ReportFacts }> {
  if (input.runs.length === 0 && (input.memory ?? []).length === 0) throw new DataError('nothing to report: give run folders and/or --memory files');
  const sections: string[] = [];
  const facts: ReportFacts = { testAccuracy: [], memoryRatios: [], ablation: null, cka: [] };
  if (input.runs.length > 0) {
    const comparison = compareRuns(input.runs);
    facts.testAccuracy = comparison.runs.map((r) => r.summary.test_accuracy);
    const names = uniqueNames(input.runs);
    const { header, rows } = comparisonTable(comparison);
    sections.push(
      '<h2>Runs</h2>',
      `<table><tr>${header.map((h) => `<th>${escape(h)}</th>`).join('')}</tr>`,
      ...rows.map((r) => `<tr>${r.map((c) => `<td>${escape(c)}</td>`).join('')}</tr>`),
      '</table>',
    );
    const curves = input.runs.map((dir, i) => ({ name: names[i], metrics: readMetrics(dir) }));
    sections.push('<h2>Curves per unit</h2>', '<p>Per unit, against epoch; colour is the unit, dash and marker the run.</p>', await figure(curvesSpec(curves), 'curves'));
    const examples = input.examples ?? 1000;
    if (examples > 0) {
      const reps: Representations[] = [];
      sections.push('<h2>Representations</h2>', `<p>On ${examples} examples of each run's test set (seeded, every class in proportion): a 2-D UMAP of every unit's output h_i and logits v_i, coloured by class, and the linear CKA of each h_i with the input and with the other units.</p>`);
      for (const [i, dir] of input.runs.entries()) {
        const r = await runRepresentations(dir, recordedOptions(comparison.runs[i].summary.options), examples);
        reps.push(r);
        facts.cka.push(r.cka[0].slice(1));
        const panels = r.units.flatMap((u) => [{ unit: u.unit, of: 'h' as const, points: u.hEmbedding }, ...(u.vEmbedding ? [{ unit: u.unit, of: 'v' as const, points: u.vEmbedding }] : [])]);
        sections.push(await figure(embeddingSpec(`${names[i]}: UMAP of each unit`, panels, r.labels), `embedding-${i + 1}`));
        sections.push(await figure(ckaSpec(`${names[i]}: linear CKA`, r.cka), `cka-${i + 1}`));
      }
      sections.push('<h2>Distributions</h2>', '<p>Each unit\'s weights and its activations on the same examples; runs with as many units overlaid over a shared range (density).</p>');
      for (const [what, pick] of [
        ['weights', (u: Representations['units'][number]) => u.weights],
        ['activations', (u: Representations['units'][number]) => u.activations],
      ] as const) {
        for (const group of [...new Set(reps.map((r) => r.units.length))]) {
          const members = reps.map((r, i) => ({ r, name: names[i] })).filter((m) => m.r.units.length === group);
          const series = Array.from({ length: group }, (_, u) => {
            const hists = sharedHistograms(members.map((m) => pick(m.r.units[u])));
            return members.map((m, k) => ({ run: m.name, unit: u + 1, histogram: hists[k] }));
          }).flat();
          sections.push(await figure(histogramSpec(`${what} (${members.map((m) => m.name).join(', ')})`, series), `hist-${what}-${group}`));
        }
      }
    }
    const option = ablationOption(comparison);
    if (option) {
      facts.ablation = option;
      const points: AblationPoint[] = comparison.runs.map((r) => ({ value: r.summary.options[option] as number | string, accuracy: r.summary.test_accuracy, method: r.summary.method }));
      sections.push(`<h2>Ablation: ${escape(flagName(option))}</h2>`, await figure(ablationSpec(flagName(option), points), 'ablation'));
    }
  }
  for (const file of input.memory ?? []) {
    const rows = readMemoryRows(file);
    for (const model of [...new Set(rows.map((r) => r.model))]) {
      const own = rows.filter((r) => r.model === model);
      sections.push(`<h2>Memory against depth: ${escape(model)}</h2>`, `<p>From ${escape(file)} (one training step, tfjs's accounting).</p>`);
      for (const [field, title] of [
        ['activation_peak_bytes', 'activation peak'],
        ['peak_bytes', 'total peak'],
      ] as const) {
        const ratio = memoryRatio(own, field);
        if (ratio) facts.memoryRatios.push({ file, model, measure: title, ...ratio });
        sections.push(await figure(memorySpec(own, field, `${model}: ${title}`), `memory-${model}-${field}`));
      }
    }
  }
  const html = [
    '<!doctype html>',
    '<html lang="en"><head><meta charset="utf-8"><title>sll report</title>',
    `<style>${STYLE}</style></head><body>`,
    '<h1>sll report</h1>',
    `<p>${escape(new Date().toISOString().slice(0, 10))}: ${input.runs.length} run${input.runs.length === 1 ? '' : 's'}${input.memory?.length ? `, ${input.memory.length} memory file${input.memory.length === 1 ? '' : 's'}` : ''}.</p>`,
    ...sections,
    '</body></html>',
    '',
  ].join('\n');
  return { html, facts };
}

/** The representations of a saved run on the first `examples` examples of its own (seeded) test subset. */
async function runRepresentations(dir: string, options: Partial<RunOptions>, examples: number): Promise<Representations> {
  const o = resolveOptions({ ...options, trainLimit: null, testLimit: null, batchSize: 1 });
  const { test: all } = loadRunData(o);
  // A seeded, class-stratified subset: a test set may be ordered by class.
  const test = examples < all.size ? subset(all, examples, o.seed + 2) : all;
  const model = await loadModel(dir);
  const source = batchSource(test, { numClasses: model.network.spec.numClasses, normalization: model.normalization });
  const batches = source.batches({ batchSize: test.size, shuffle: false, seed: 0, epoch: 0 });
  const first = await batches.next();
  await batches.return(undefined);
  if (first.done) throw new DataError(`${dir}: its test set is empty`);
  const { x, labels } = first.value;
  try {
    return representations(model, x, Array.from(labels.dataSync()), o.seed);
  } finally {
    tf.dispose([x, labels]);
    disposeHeaded(model);
  }
}

/** Short distinct names for run folders: their base names, or more of their paths where those clash. */
function uniqueNames(dirs: readonly string[]): string[] {
  const base = dirs.map((d) => path.basename(path.resolve(d)));
  return base.map((b, i) => (base.filter((x) => x === b).length > 1 ? path.relative(process.cwd(), path.resolve(dirs[i])) || b : b));
}

async function figure(spec: Parameters<typeof renderSvg>[0], id: string): Promise<string> {
  return `<figure id="${escape(id)}">${await renderSvg(spec)}</figure>`;
}

const STYLE = [
  'body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}',
  'table{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}',
  'figure{margin:1em 0}h2{margin-top:1.6em}',
].join('');
