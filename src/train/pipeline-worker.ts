/**
 * One pipeline stage: a worker thread with its own tfjs and backend that trains a contiguous range of
 * units. It takes (step, h_{first-1}, v_{first-1}, y) from the previous stage (or the minibatch from the
 * main thread), runs its units' local steps, and sends (h_last, v_last, y) downstream and its stats rows to
 * the main thread. Because a unit's step needs nothing back from later units, stage s can work on
 * minibatch t+1 while stage s+1 works on t, and the result is exactly that of sequential training.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../backend.js';
import { unitVariables } from '../models/network.js';
import { blasThreads, type RunOptions } from '../options.js';
import { buildModel } from './fit.js';
import { optimizerState, restoreOptimizerState } from './optimizers.js';
import { SllTrainer } from './sll.js';
import { ProjectionHead } from '../objectives/projection.js';
import type { StageInit, StageReply, StageRequest, StepMessage } from './pipeline.js';

const init = workerData as StageInit;
const main = parentPort!;

function reply(message: StageReply, transfer: ArrayBuffer[] = []): void {
  main.postMessage(message, transfer);
}

async function start(): Promise<void> {
  const o: RunOptions = init.options;
  await useBackend(o.backend, blasThreads(o));
  const built = buildModel(o, init.inputShape, init.numClasses);
  // Take the main thread's weights and heads, so a resumed or pre-trained model continues as it is.
  const heads = built.heads.map((h, i) =>
    i >= init.first && i < init.end
      ? new ProjectionHead(h.config, tf.tensor2d(init.heads[i - init.first], h.projection.shape as [number, number]))
      : h,
  );
  const trainer = new SllTrainer({ ...built, heads }, o, { first: init.first, end: init.end });
  trainer.units.forEach((unit, k) =>
    unitVariables(unit).forEach((v, j) => v.assign(tf.tensor(init.weights[k][j], v.shape))),
  );
  const downstream: MessagePort | null = init.downstream;
  const who = `stage ${init.stage + 1} (units ${init.first + 1}-${init.end})`;

  const onStep = (m: StepMessage) => {
    // tf.tidy returns tensors only: handed a typed array it would walk every element looking for tensors.
    const r = tf.tidy(() => {
      const labels = tf.tensor1d(m.y, 'int32');
      const input = tf.tensor(m.h, m.shape);
      const parent =
        m.v == null ? (init.first === 0 ? trainer.inputParent(input) : null) : tf.tensor2d(m.v, [m.n, init.numClasses]);
      return trainer.stepUnits(input, parent, labels, m.step);
    });
    reply({ type: 'stats', stage: init.stage, step: m.step, rows: r.stats.arraySync() });
    if (downstream) {
      // Copies: the backend's own storage may be shared with other tensors, and is transferred away.
      const h = (r.h.dataSync() as Float32Array).slice();
      const v = (r.v.dataSync() as Float32Array).slice();
      const next: StepMessage = { type: 'step', step: m.step, n: m.n, h, shape: r.h.shape, v, y: m.y };
      downstream.postMessage(next, [h.buffer as ArrayBuffer, v.buffer as ArrayBuffer, m.y.buffer as ArrayBuffer]);
    }
    tf.dispose([r.h, r.v, r.stats]);
  };

  const onRequest = async (m: StageRequest) => {
    if (m.type === 'epoch') {
      trainer.setEpoch(m.epoch);
      reply({ type: 'epoch', stage: init.stage, lambdas: [...trainer.currentLambdas] });
    } else if (m.type === 'state') {
      const weights = trainer.units.map((u) => unitVariables(u).map((v) => v.dataSync() as Float32Array));
      reply({ type: 'state', stage: init.stage, weights, optimizers: await Promise.all(trainer.optimizers.map(optimizerState)) });
    } else if (m.type === 'restore') {
      for (const [k, opt] of trainer.optimizers.entries()) await restoreOptimizerState(opt, m.optimizers[k]);
      reply({ type: 'restored', stage: init.stage });
    }
  };

  const guard = (f: () => unknown) => {
    Promise.resolve()
      .then(f)
      .catch((e: Error) => reply({ type: 'error', who, message: e.message, stack: e.stack ?? '' }));
  };
  const upstream: MessagePort | null = init.upstream;
  (upstream ?? main).on('message', (m: StepMessage) => {
    if (m.type === 'step') guard(() => onStep(m));
  });
  main.on('message', (m: StageRequest | StepMessage) => {
    if (m.type === 'step') return; // handled above when this is the first stage
    guard(() => onRequest(m));
  });
  reply({ type: 'ready', stage: init.stage });
}

start().catch((e: Error) =>
  reply({ type: 'error', who: `stage ${init.stage + 1} (units ${init.first + 1}-${init.end})`, message: e.message, stack: e.stack ?? '' }),
);
