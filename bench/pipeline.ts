/**
 * npm run bench:pipeline [-- --json] [--repeats R] [--backend native|wasm] [--cases mlp,conv]
 * Epoch time of SLL, sequential with 1 BLAS thread, sequential with 2, and a 2-stage pipeline
 * (--pipeline 2, one BLAS thread per stage), runs alternating, medians of R repeats, for
 *   mlp:  4 units x 1024 on all 60000 MNIST images (batch 128);
 *   conv: a stack of 4 conv3x3 units of 32 channels on 2560 MNIST images (batch 128).
 * Prints a table, and with --json one JSON object per line:
 * {case, backend, pipeline, threads, examples, epoch_seconds, speedup} (speedup over sequential, 1 thread).
 */
import { parseArgs } from 'node:util';
import type { RunOptions } from '../src/recipe/options.js';
import { runTraining } from '../src/recipe/run.js';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    repeats: { type: 'string', default: '3' },
    backend: { type: 'string', default: 'native' },
    cases: { type: 'string', default: 'mlp,conv' },
  },
});
const repeats = Number(values.repeats);
const backend = values.backend as 'native' | 'wasm';
const CASES: Record<string, Partial<RunOptions>> = {
  mlp: { model: 'mlp', layers: 4, width: 1024, trainLimit: 60000 },
  conv: { model: 'convstack', layers: 4, width: 32, trainLimit: 2560 },
};
// wasm runs one thread per tfjs instance, so only native has a 2-thread sequential run.
const configs = [
  { name: 'sequential', pipeline: 1, threads: 1 },
  ...(backend === 'native' ? [{ name: 'sequential 2t', pipeline: 1, threads: 2 }] : []),
  { name: 'pipeline 2', pipeline: 2, threads: 2 },
];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

for (const name of values.cases!.split(',')) {
  const shape = CASES[name];
  if (!shape) throw new Error(`unknown case ${name}; cases: ${Object.keys(CASES).join(', ')}`);
  const times = new Map<string, number[]>(configs.map((c) => [c.name, []]));
  for (let r = 0; r < repeats; r++) {
    for (const c of r % 2 === 0 ? configs : [...configs].reverse()) {
      const { summary } = await runTraining(
        { ...shape, epochs: 1, batchSize: 128, testLimit: 500, pipeline: c.pipeline, threads: c.pipeline > 1 ? 1 : c.threads, backend },
        null,
      );
      times.get(c.name)!.push(summary.train_seconds);
      process.stderr.write(`${name} repeat ${r + 1}/${repeats} ${c.name}: ${summary.train_seconds.toFixed(2)} s\n`);
    }
  }
  const base = median(times.get('sequential')!);
  const rows = configs.map((c) => ({
    case: `${name}-4x${shape.width}`,
    backend,
    pipeline: c.pipeline,
    threads: c.threads,
    examples: shape.trainLimit,
    epoch_seconds: median(times.get(c.name)!),
    speedup: base / median(times.get(c.name)!),
  }));
  if (values.json) {
    rows.forEach((row) => console.log(JSON.stringify(row)));
    continue;
  }
  console.log(`SLL ${name} 4 units x ${shape.width}, batch 128, ${shape.trainLimit} examples per epoch, backend ${backend}, median of ${repeats}`);
  console.log('config          threads  epoch s  speedup');
  rows.forEach((row, i) =>
    console.log(`${configs[i].name.padEnd(14)}  ${String(row.threads).padStart(7)}  ${row.epoch_seconds.toFixed(2).padStart(7)}  ${row.speedup.toFixed(2).padStart(7)}x`),
  );
  const twoThreads = rows.find((r) => r.pipeline === 1 && r.threads === 2);
  const piped = rows.find((r) => r.pipeline === 2)!;
  if (twoThreads) console.log(`pipeline 2 vs sequential with 2 BLAS threads: ${(twoThreads.epoch_seconds / piped.epoch_seconds).toFixed(2)}x\n`);
}
