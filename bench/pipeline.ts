/**
 * npm run bench:pipeline [-- --json] [--train-limit N] [--repeats R] [--backend native|wasm]
 * Epoch time of SLL on an MLP of 4 units x 1024 (MNIST, batch 128): sequential with 1 BLAS thread,
 * sequential with 2, and a 2-stage pipeline (--pipeline 2, one BLAS thread per stage), runs alternating,
 * medians of R repeats. Prints a table, and with --json one JSON object per line:
 * {case, backend, pipeline, threads, examples, epoch_seconds, speedup} (speedup over sequential, 1 thread).
 */
import { parseArgs } from 'node:util';
import { runTraining } from '../src/run.js';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    'train-limit': { type: 'string', default: '12800' },
    repeats: { type: 'string', default: '3' },
    backend: { type: 'string', default: 'native' },
  },
});
const examples = Number(values['train-limit']);
const repeats = Number(values.repeats);
const backend = values.backend as 'native' | 'wasm';
// wasm runs one thread per tfjs instance, so only native has a 2-thread sequential run.
const configs = [
  { name: 'sequential', pipeline: 1, threads: 1 },
  ...(backend === 'native' ? [{ name: 'sequential 2t', pipeline: 1, threads: 2 }] : []),
  { name: 'pipeline 2', pipeline: 2, threads: 2 },
];

const log = (s: string) => process.stderr.write(`${s}\n`);
const times = new Map<string, number[]>(configs.map((c) => [c.name, []]));
for (let r = 0; r < repeats; r++) {
  for (const c of r % 2 === 0 ? configs : [...configs].reverse()) {
    const { summary } = await runTraining(
      {
        layers: 4,
        width: 1024,
        epochs: 1,
        batchSize: 128,
        trainLimit: examples,
        testLimit: 500,
        pipeline: c.pipeline,
        threads: c.pipeline > 1 ? 1 : c.threads,
        backend,
      },
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
  console.log('config          threads  epoch s  speedup');
  rows.forEach((row, i) =>
    console.log(`${configs[i].name.padEnd(14)}  ${String(row.threads).padStart(7)}  ${row.epoch_seconds.toFixed(2).padStart(7)}  ${row.speedup.toFixed(2).padStart(7)}x`),
  );
  const twoThreads = rows.find((r) => r.pipeline === 1 && r.threads === 2);
  const piped = rows.find((r) => r.pipeline === 2)!;
  if (twoThreads) console.log(`pipeline 2 vs sequential with 2 BLAS threads: ${(twoThreads.epoch_seconds / piped.epoch_seconds).toFixed(2)}x`);
}
