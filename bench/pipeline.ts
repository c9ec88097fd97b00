/**
 * npm run bench:pipeline [-- --json] [--train-limit N] [--repeats R]
 * Epoch time of SLL on an MLP of 4 units x 1024 (MNIST, batch 128), sequential (--pipeline 1) against a
 * 2-stage pipeline (--pipeline 2), runs alternating, medians of R repeats. Prints a table, and with --json
 * one JSON object per line: {case, backend, pipeline, threads, examples, epoch_seconds}.
 */
import { parseArgs } from 'node:util';
import { runTraining } from '../src/run.js';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    'train-limit': { type: 'string', default: '12800' },
    repeats: { type: 'string', default: '3' },
    backend: { type: 'string', default: 'wasm' },
  },
});
const examples = Number(values['train-limit']);
const repeats = Number(values.repeats);
const backend = values.backend as 'wasm' | 'cpu';
// wasm runs one thread per tfjs instance: the sequential run uses one core, each stage one more.
const configs = [
  { name: 'sequential', pipeline: 1, threads: 1 },
  { name: 'pipeline 2', pipeline: 2, threads: 2 },
];

const log = (s: string) => process.stderr.write(`${s}\n`);
const times = new Map<string, number[]>(configs.map((c) => [c.name, []]));
for (let r = 0; r < repeats; r++) {
  for (const c of r % 2 === 0 ? configs : [...configs].reverse()) {
    const { summary } = await runTraining(
      { layers: 4, width: 1024, epochs: 1, batchSize: 128, trainLimit: examples, testLimit: 500, pipeline: c.pipeline, backend },
      null,
    );
    times.get(c.name)!.push(summary.train_seconds);
    log(`repeat ${r + 1}/${repeats} ${c.name}: ${summary.train_seconds.toFixed(2)} s`);
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const base = median(times.get('sequential')!);
const rows = configs.map((c) => ({
  case: 'mlp-4x1024',
  backend,
  pipeline: c.pipeline,
  threads: c.threads,
  examples,
  epoch_seconds: median(times.get(c.name)!),
  speedup: base / median(times.get(c.name)!),
}));
if (values.json) rows.forEach((row) => console.log(JSON.stringify(row)));
else {
  console.log(`SLL MLP 4x1024, batch 128, ${examples} examples per epoch, backend ${backend}, median of ${repeats}`);
  console.log('config        threads  epoch s  speedup');
  rows.forEach((row, i) =>
    console.log(`${configs[i].name.padEnd(12)}  ${String(row.threads).padStart(7)}  ${row.epoch_seconds.toFixed(2).padStart(7)}  ${row.speedup.toFixed(2).padStart(7)}x`),
  );
}
