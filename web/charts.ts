/**
 * The live charts: vega-lite specs compiled once, rendered by vega Views into their divs, and fed new
 * rows as training goes (view.data + runAsync), so a chart redraws without being rebuilt.
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

/** An accuracy point: a series (method and unit), the split, the epoch (1-based). */
export interface AccuracyRow {
  series: string;
  split: 'train' | 'test';
  epoch: number;
  accuracy: number;
}

/** A loss point: the unit loss's parts (eq. 5), per series. */
export interface LossRow {
  series: string;
  part: 'prediction' | 'alignment';
  epoch: number;
  loss: number;
}

/** tf.memory().numBytes at a time (seconds since the page opened). */
export interface MemoryRow {
  t: number;
  mb: number;
}

const WIDTH = 300;
const HEIGHT = 200;

function lineSpec(title: string, y: string, yTitle: string, color: string, dash: string, yScale: object = {}): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    width: WIDTH,
    height: HEIGHT,
    data: { name: 'rows' },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { tickMinStep: 1 } },
      y: { field: y, type: 'quantitative', title: yTitle, scale: { zero: false, ...yScale } },
      color: { field: color, type: 'nominal', title: null },
      strokeDash: { field: dash, type: 'nominal', title: null, legend: { symbolType: 'stroke', symbolSize: 400 } },
      tooltip: [{ field: color }, { field: dash }, { field: 'epoch' }, { field: y, format: '.4f' }],
    },
  };
}

const memorySpec: TopLevelSpec = {
  $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
  title: 'tfjs memory in use (MB)',
  width: WIDTH,
  height: HEIGHT,
  data: { name: 'rows' },
  mark: { type: 'line', interpolate: 'step-after' },
  encoding: {
    x: { field: 't', type: 'quantitative', title: 'seconds' },
    y: { field: 'mb', type: 'quantitative', title: 'MB' },
  },
};

/** Draws the dash legends' symbols as dashed strokes (vega-lite fills them, invisible as lines, when the marks have points). */
function dashedLegends(spec: vega.Spec): vega.Spec {
  for (const legend of spec.legends ?? []) {
    if (legend.strokeDash) legend.encode = { ...legend.encode, symbols: { update: { stroke: { value: '#444' }, strokeWidth: { value: 2 } } } };
  }
  return spec;
}

/** One chart: a vega View in `container`, made at the first rows (vega draws an empty data set with infinite sizes), its rows replaced by set(). */
export class Chart<Row extends object> {
  private view: vega.View | null = null;

  constructor(
    private readonly container: HTMLElement,
    private readonly spec: TopLevelSpec,
  ) {
    container.textContent = 'no data yet';
  }

  async set(rows: Row[]): Promise<void> {
    if (rows.length === 0) {
      this.view?.finalize();
      this.view = null;
      this.container.textContent = 'no data yet';
      return;
    }
    if (!this.view) {
      this.container.textContent = '';
      this.view = new vega.View(vega.parse(dashedLegends(compile(this.spec).spec)), { renderer: 'svg', container: this.container, hover: true });
    }
    await this.view.data('rows', rows).runAsync();
  }
}

/** The page's three charts. */
export function createCharts(el: { accuracy: HTMLElement; loss: HTMLElement; memory: HTMLElement }) {
  return {
    accuracy: new Chart<AccuracyRow>(el.accuracy, lineSpec('accuracy per head', 'accuracy', 'accuracy', 'series', 'split')),
    loss: new Chart<LossRow>(el.loss, lineSpec('training loss: prediction and alignment parts', 'loss', 'loss', 'series', 'part', { type: 'symlog' })),
    memory: new Chart<MemoryRow>(el.memory, memorySpec),
  };
}
