/**
 * npm run bench:pipeline [-- --json] [--repeats R] [--backend native|wasm] [--cases mlp,conv] [--broker [--broker-url URL]]
 * Epoch time of SLL, sequential with 1 BLAS thread, sequential with 2, and a 2-stage pipeline
 * (--pipeline 2, one BLAS thread per stage), runs alternating, medians of R repeats, for
 *   mlp:  4 units x 1024 on all 60000 MNIST images (batch 128);
 *   conv: a stack of 4 conv3x3 units of 32 channels on 2560 MNIST images (batch 128).
 * --broker adds the 2 stages as processes over Redis Streams (a redis-server started on a free port, or
 * --broker-url's), with the broker's own count of the bytes written to it per step and the time per step
 * over the threads' pipeline.
 * Prints a table, and with --json one JSON object per line: {case, backend, pipeline, threads, transport,
 * examples, epoch_seconds, speedup} (speedup over sequential, 1 thread), plus broker_bytes_per_step and
 * overhead_ms_per_step on the Redis row.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { createClient } from 'redis';
import type { RunOptions } from '../src/recipe/options.js';
import { runTraining } from '../src/recipe/run.js';
import { benchArgs, intFlag, listFlag } from './args.js';

const { values } = benchArgs(() =>
  parseArgs({
    options: {
      json: { type: 'boolean', default: false },
      repeats: { type: 'string', default: '3' },
      backend: { type: 'string', default: 'native' },
      cases: { type: 'string', default: 'mlp,conv' },
      broker: { type: 'boolean', default: false },
      'broker-url': { type: 'string' },
    },
  }),
);

/** A redis-server of our own on a free port (no persistence: the bench measures the transport). */
async function startRedis(): Promise<{ url: string; server: ChildProcess }> {
  const port = await new Promise<number>((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (probe.address() as net.AddressInfo).port;
      probe.close(() => resolve(p));
    });
  });
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 500));
  return { url: `redis://127.0.0.1:${port}`, server };
}

const own = values.broker && !values['broker-url'] ? await startRedis() : null;
const brokerUrl = values.broker ? (values['broker-url'] ?? own!.url) : null;
const brokerClient = brokerUrl ? createClient({ url: brokerUrl }) : null;
await brokerClient?.connect();
/** Bytes written to the broker so far (its own count, INFO stats). */
async function brokerBytesIn(): Promise<number> {
  const info = await brokerClient!.info('stats');
  return Number(/total_net_input_bytes:(\d+)/.exec(info)![1]);
}
const repeats = intFlag('repeats', values.repeats);
const backend = values.backend as 'native' | 'wasm';
const CASES: Record<string, Partial<RunOptions>> = {
  mlp: { model: 'mlp', layers: 4, width: 1024, trainLimit: 60000 },
  conv: { model: 'convstack', layers: 4, width: 32, trainLimit: 2560 },
};
// wasm runs one thread per tfjs instance, so only native has a 2-thread sequential run.
const configs = [
  { name: 'sequential', pipeline: 1, threads: 1, broker: null as string | null },
  ...(backend === 'native' ? [{ name: 'sequential 2t', pipeline: 1, threads: 2, broker: null }] : []),
  { name: 'pipeline 2', pipeline: 2, threads: 2, broker: null },
  ...(brokerUrl ? [{ name: 'redis 2', pipeline: 2, threads: 2, broker: brokerUrl }] : []),
];
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

for (const name of listFlag('cases', values.cases!, ['mlp', 'conv'])) {
  const shape = CASES[name];
  if (!shape) throw new Error(`unknown case ${name}; cases: ${Object.keys(CASES).join(', ')}`);
  const times = new Map<string, number[]>(configs.map((c) => [c.name, []]));
  const bytesPerStep: number[] = [];
  const steps = Math.ceil(shape.trainLimit! / 128);
  for (let r = 0; r < repeats; r++) {
    for (const c of r % 2 === 0 ? configs : [...configs].reverse()) {
      const out = c.broker ? fs.mkdtempSync(path.join(os.tmpdir(), 'sll-bench-redis-')) : null;
      const before = c.broker ? await brokerBytesIn() : 0;
      const { summary } = await runTraining(
        { ...shape, epochs: 1, batchSize: 128, testLimit: 500, pipeline: c.pipeline, threads: c.pipeline > 1 ? 1 : c.threads, backend, broker: c.broker },
        out,
      );
      if (c.broker) {
        bytesPerStep.push(((await brokerBytesIn()) - before) / steps);
        fs.rmSync(out!, { recursive: true, force: true });
      }
      times.get(c.name)!.push(summary.train_seconds);
      process.stderr.write(`${name} repeat ${r + 1}/${repeats} ${c.name}: ${summary.train_seconds.toFixed(2)} s\n`);
    }
  }
  const base = median(times.get('sequential')!);
  const threadsPipeline = median(times.get('pipeline 2')!);
  const rows = configs.map((c) => ({
    case: `${name}-4x${shape.width}`,
    backend,
    pipeline: c.pipeline,
    threads: c.threads,
    transport: c.broker ? 'redis' : c.pipeline > 1 ? 'threads' : 'none',
    examples: shape.trainLimit,
    epoch_seconds: median(times.get(c.name)!),
    speedup: base / median(times.get(c.name)!),
    ...(c.broker && {
      broker_bytes_per_step: Math.round(median(bytesPerStep)),
      overhead_ms_per_step: ((median(times.get(c.name)!) - threadsPipeline) * 1000) / steps,
    }),
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
  if (twoThreads) console.log(`pipeline 2 vs sequential with 2 BLAS threads: ${(twoThreads.epoch_seconds / piped.epoch_seconds).toFixed(2)}x`);
  const redis = rows.find((r) => r.transport === 'redis');
  if (redis) {
    console.log(
      `redis 2 (stages as processes over Redis Streams): ${(redis.broker_bytes_per_step! / 2 ** 20).toFixed(2)} MiB written to the broker per step, ` +
        `${redis.overhead_ms_per_step!.toFixed(1)} ms per step over the threads' pipeline (${steps} steps)`,
    );
  }
  console.log('');
}
await brokerClient?.quit();
own?.server.kill();
