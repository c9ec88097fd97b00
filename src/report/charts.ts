/**
 * The report's charts as Vega-Lite specifications, rendered to inline SVG by Vega in Node (no browser, no
 * network): per-unit curves against epoch (paper Fig. 3b, 4a), memory against depth (Fig. 2), final
 * accuracy against one option (Fig. 4b/4c), embeddings and CKA of the representations (Fig. 3a), and
 * histograms of weights and activations (Fig. 5).
 */
import * as vega from 'vega';
import * as vl from 'vega-lite';
import type { UnitEpochMetrics } from '../train/fit.js';
import type { StepBytes } from '../train/memory.js';
import type { Histogram } from './histogram.js';

/** A Vega-Lite specification (top level). */
export type ChartSpec = vl.TopLevelSpec;

/** One run's curves: its name in the legend and its metrics.jsonl lines. */
export interface RunCurves {
  name: string;
  metrics: readonly UnitEpochMetrics[];
}

/** One row of `sll bench memory --json`. */
export interface MemoryRow extends StepBytes {
  model: string;
  method: string;
  depth: number;
  unit_layers: number;
}

const MIB = 2 ** 20;

/** The measures of the curves chart, each a panel. */
export const CURVE_MEASURES = [
  { field: 'train_accuracy', title: 'train accuracy' },
  { field: 'test_accuracy', title: 'test accuracy' },
  { field: 'prediction_loss', title: 'prediction loss (CE)' },
  { field: 'alignment_loss', title: 'alignment loss (-log BC)' },
] as const;

/**
 * Per unit, train and test accuracy and both loss parts against epoch: one panel per measure, a line per
 * (run, unit), colour by unit, dash and marker by run. A BP run's one row (lambda null) is its whole network, with
 * no alignment loss.
 */
export function curvesSpec(runs: readonly RunCurves[]): ChartSpec {
  const values = runs.flatMap((r) =>
    r.metrics.flatMap((m) => {
      const bp = m.lambda === null;
      return CURVE_MEASURES.filter((c) => m[c.field] != null && !(bp && c.field === 'alignment_loss')).map((c) => ({
        run: r.name,
        unit: bp ? 'BP (whole network)' : `unit ${m.unit}`,
        unit_index: bp ? Number.MAX_SAFE_INTEGER : m.unit,
        epoch: m.epoch,
        measure: c.title,
        value: m[c.field],
      }));
    }),
  );
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    data: { values },
    facet: { field: 'measure', type: 'nominal', title: null, sort: CURVE_MEASURES.map((c) => c.title) },
    columns: 2,
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 300,
      height: 180,
      mark: { type: 'line', point: { filled: true, size: 30 } },
      encoding: {
        x: { field: 'epoch', type: 'quantitative', axis: { tickMinStep: 1, format: 'd' } },
        y: { field: 'value', type: 'quantitative', title: null, scale: { zero: false } },
        color: { field: 'unit', type: 'nominal', title: 'unit', sort: { field: 'unit_index', op: 'min' } },
        // Runs differ by dash and by marker; the marker's legend names them (a dash legend draws no line here).
        strokeDash: { field: 'run', type: 'nominal', legend: null },
        shape: { field: 'run', type: 'nominal', title: 'run' },
        detail: { field: 'run', type: 'nominal' },
      },
    },
  } as ChartSpec;
}

/** The largest depth measured for both methods, and BP's over SLL's peak there (null without both). */
export function memoryRatio(rows: readonly MemoryRow[], field: 'activation_peak_bytes' | 'peak_bytes'): { depth: number; ratio: number } | null {
  const depthsOf = (method: string) => new Set(rows.filter((r) => r.method === method).map((r) => r.depth));
  const sll = depthsOf('sll');
  const common = [...depthsOf('bp')].filter((d) => sll.has(d));
  if (common.length === 0) return null;
  const depth = Math.max(...common);
  const at = (method: string) => Math.min(...rows.filter((r) => r.method === method && r.depth === depth).map((r) => r[field]));
  return { depth, ratio: at('bp') / at('sll') };
}

/** Memory against depth (MiB), a line per method (and unit size), with BP/SLL at the largest depth written on the chart. */
export function memorySpec(rows: readonly MemoryRow[], field: 'activation_peak_bytes' | 'peak_bytes', title: string): ChartSpec {
  const values = rows.map((r) => ({
    depth: r.depth,
    mib: r[field] / MIB,
    series: r.method === 'sll' && r.unit_layers > 1 ? `SLL^{${r.unit_layers}+}` : r.method.toUpperCase(),
  }));
  const ratio = memoryRatio(rows, field);
  const top = Math.max(...values.map((v) => v.mib));
  const layers: object[] = [
    {
      mark: { type: 'line', point: { filled: true, size: 30 } },
      encoding: {
        x: { field: 'depth', type: 'quantitative', title: 'depth (layers)' },
        y: { field: 'mib', type: 'quantitative', title: 'MiB' },
        color: { field: 'series', type: 'nominal', title: null },
      },
    },
  ];
  if (ratio) {
    layers.push({
      data: { values: [{ depth: ratio.depth, mib: top, label: `BP / SLL = ${ratio.ratio.toFixed(1)}x at depth ${ratio.depth}` }] },
      mark: { type: 'text', align: 'right', baseline: 'top', dy: -12, fontSize: 12 },
      encoding: { x: { field: 'depth', type: 'quantitative' }, y: { field: 'mib', type: 'quantitative' }, text: { field: 'label' } },
    });
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: 320,
    height: 220,
    data: { values },
    layer: layers,
  } as ChartSpec;
}

/** One point of an ablation: a run's value of the option that varies, and its final test accuracy. */
export interface AblationPoint {
  value: number | string;
  accuracy: number;
  method: string;
}

/** Final test accuracy against the value of one option, a line per method. */
export function ablationSpec(option: string, points: readonly AblationPoint[]): ChartSpec {
  const numeric = points.every((p) => typeof p.value === 'number');
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `test accuracy against ${option}`,
    width: 320,
    height: 220,
    data: { values: points.map((p) => ({ ...p, accuracy: 100 * p.accuracy, method: p.method.toUpperCase() })) },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'value', type: numeric ? 'quantitative' : 'ordinal', title: option, ...(numeric ? { scale: { zero: false } } : {}) },
      y: { field: 'accuracy', type: 'quantitative', title: 'test accuracy (%)', scale: { zero: false } },
      color: { field: 'method', type: 'nominal', title: null },
    },
  } as ChartSpec;
}

/** Renders a Vega-Lite spec to an SVG element (no XML namespace declarations: it is inlined in HTML). */
export async function renderSvg(spec: ChartSpec): Promise<string> {
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    return svg.replace(/ xmlns(:xlink)?="[^"]*"/g, '');
  } finally {
    view.finalize();
  }
}

/** One run's 2-D embeddings: per unit, of h_i and (where there is one) of v_i, with each example's class. */
export interface EmbeddingPanel {
  unit: number;
  of: 'h' | 'v';
  points: readonly [number, number][];
}

/** A scatter per (representation, unit): examples placed by their embedding, coloured by class (Fig. 3a). */
export function embeddingSpec(title: string, panels: readonly EmbeddingPanel[], labels: readonly number[]): ChartSpec {
  // One panel per (representation, unit), h_i first then v_i, wrapped at one row's worth of units: a run
  // whose units have no logits of their own (BP: only its classifier's) leaves no empty frames.
  const order = [...panels].sort((a, b) => (a.of === b.of ? a.unit - b.unit : a.of === 'h' ? -1 : 1));
  const name = (p: EmbeddingPanel) => `unit ${p.unit}: ${p.of === 'h' ? 'h_i (output)' : 'v_i (logits)'}`;
  const values = order.flatMap((p, k) => p.points.map(([x, y], i) => ({ x, y, class: String(labels[i]), panel: name(p), panel_index: k })));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    data: { values },
    facet: { field: 'panel', type: 'nominal', title: null, sort: { field: 'panel_index', op: 'min' } },
    columns: Math.max(1, new Set(panels.map((p) => p.unit)).size),
    resolve: { scale: { x: 'independent', y: 'independent' } },
    spec: {
      width: 150,
      height: 150,
      mark: { type: 'circle', size: 8, opacity: 0.7 },
      encoding: {
        x: { field: 'x', type: 'quantitative', axis: null, scale: { zero: false } },
        y: { field: 'y', type: 'quantitative', axis: null, scale: { zero: false } },
        color: { field: 'class', type: 'nominal', title: 'class', scale: { scheme: 'category10' } },
      },
    },
  } as ChartSpec;
}

/** Linear CKA between the input and every unit's output, and between units, as a heat map with its values. */
export function ckaSpec(title: string, matrix: readonly (readonly number[])[]): ChartSpec {
  const name = (i: number) => (i === 0 ? 'input' : `unit ${i}`);
  const values = matrix.flatMap((row, i) => row.map((cka, j) => ({ a: name(i), b: name(j), i, j, cka })));
  const order = matrix.map((_, i) => name(i));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    data: { values },
    width: 36 * matrix.length,
    height: 36 * matrix.length,
    encoding: {
      x: { field: 'a', type: 'ordinal', sort: order, title: null },
      y: { field: 'b', type: 'ordinal', sort: order, title: null },
    },
    layer: [
      { mark: 'rect', encoding: { color: { field: 'cka', type: 'quantitative', title: 'CKA', scale: { domain: [0, 1], scheme: 'viridis' } } } },
      { mark: { type: 'text', fontSize: 10 }, encoding: { text: { field: 'cka', type: 'quantitative', format: '.2f' }, color: { condition: { test: 'datum.cka > 0.6', value: 'black' }, value: 'white' } } },
    ],
  } as ChartSpec;
}

/** Histograms of one quantity per unit, a run per colour over a shared range (Fig. 5): density, so sizes compare. */
export function histogramSpec(title: string, series: readonly { run: string; unit: number; histogram: Histogram }[]): ChartSpec {
  const values = series.flatMap(({ run, unit, histogram: h }) => {
    const width = (h.hi - h.lo) / h.counts.length;
    const inRange = h.total - h.outside;
    return h.counts.map((c, b) => ({ run, unit: `unit ${unit}`, unit_index: unit, x0: h.lo + b * width, x1: h.lo + (b + 1) * width, density: inRange > 0 ? c / inRange : 0 }));
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    data: { values },
    facet: { field: 'unit', type: 'nominal', title: null, sort: { field: 'unit_index', op: 'min' } },
    columns: 4,
    resolve: { scale: { x: 'independent', y: 'independent' } },
    spec: {
      width: 180,
      height: 110,
      mark: { type: 'rect', opacity: 0.55 },
      encoding: {
        x: { field: 'x0', type: 'quantitative', title: null, scale: { zero: false } },
        x2: { field: 'x1' },
        y: { field: 'density', type: 'quantitative', title: null, stack: null },
        color: { field: 'run', type: 'nominal', title: 'run' },
      },
    },
  } as ChartSpec;
}
