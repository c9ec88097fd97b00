/**
 * npm run bench:rss [-- --json] [--epochs E] [--pipelines 1,2] [--backend native|wasm|cpu]
 * Resident memory of the process (main thread and every pipeline worker) after each epoch of
 * `sll train --model mlp --layers 4 --width 1024 --train-limit 5000 --test-limit 1000 --epochs E`
 * (checkpoints into a temporary folder, as the CLI writes them), once per --pipelines value: a leak shows
 * as growth from epoch to epoch. Prints a table and, with --json, one JSON object per line:
 * {pipeline, epoch, rss_mib, tensors} per epoch and {pipeline, rss_first_mib, rss_last_mib, growth}
 * (last over epoch 2; epoch 1 still warms up allocators and caches).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { runTraining } from '../src/recipe/run.js';
import { benchArgs, intFlag, listFlag } from './args.js';

const { values } = benchArgs(() =>
  parseArgs({
    options: {
      json: { type: 'boolean', default: false },
      epochs: { type: 'string', default: '10' },
      pipelines: { type: 'string', default: '1,2' },
      backend: { type: 'string', default: 'native' },
    },
  }),
);
const epochs = intFlag('epochs', values.epochs);
const mib = (b: number) => b / 2 ** 20;
const lines: string[] = [];
const table: string[] = ['pipeline  epoch  rss MiB  tensors'];

for (const pipeline of listFlag('pipelines', values.pipelines!).map((p) => intFlag('pipelines', p))) {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'sll-bench-rss-'));
  const rss: number[] = [];
  await runTraining(
    { model: 'mlp', layers: 4, width: 1024, trainLimit: 5000, testLimit: 1000, epochs, pipeline, backend: values.backend as 'native' },
    out,
    {
      onEpochEnd(epoch) {
        const r = process.memoryUsage().rss;
        rss.push(r);
        const tensors = tf.memory().numTensors;
        lines.push(JSON.stringify({ pipeline, epoch: epoch + 1, rss_mib: +mib(r).toFixed(1), tensors }));
        table.push(`${String(pipeline).padStart(8)}  ${String(epoch + 1).padStart(5)}  ${mib(r).toFixed(1).padStart(7)}  ${String(tensors).padStart(7)}`);
        process.stderr.write(`pipeline ${pipeline} epoch ${epoch + 1}: ${mib(r).toFixed(1)} MiB\n`);
      },
    },
  );
  fs.rmSync(out, { recursive: true, force: true });
  const first = rss[Math.min(1, rss.length - 1)];
  const last = rss[rss.length - 1];
  lines.push(JSON.stringify({ pipeline, rss_first_mib: +mib(first).toFixed(1), rss_last_mib: +mib(last).toFixed(1), growth: +(last / first).toFixed(3) }));
  table.push(`pipeline ${pipeline}: epoch ${epochs} / epoch 2 = ${(last / first).toFixed(3)}`);
}
if (values.json) {
  console.log(lines.join('\n'));
  console.error(table.join('\n'));
} else {
  console.log(table.join('\n'));
}
