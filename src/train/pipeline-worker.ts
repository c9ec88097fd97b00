/**
 * One pipeline stage: a worker thread with its own tfjs and backend that trains a contiguous range of
 * units. It takes (step, h_{first-1}, v_{first-1}, y) from the previous stage (or the minibatch from the
 * main thread), runs its units' local steps, and sends (h_last, v_last, y) downstream and its stats rows to
 * the main thread. Because a unit's step needs nothing back from later units, stage s can work on
 * minibatch t+1 while stage s+1 works on t, and the result is exactly that of sequential training.
 */
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import * as tf from '@tensorflow/tfjs';
import { useBackend, type BackendName } from '../backend.js';
import { layerFromJson } from '../models/clone.js';
import { networkFromModel } from '../models/network.js';
import { ProjectionHead } from '../objectives/projection.js';
import { optimizerState, restoreOptimizerState } from './optimizers.js';
import type { StageInit, StageReply, StageRequest, StepMessage } from './pipeline-protocol.js';
import { SllTrainer } from './sll.js';

const init = workerData as StageInit;
const main = parentPort!;
const who = `stage ${init.stage + 1} (units ${init.first + 1}-${init.end})`;

function reply(message: StageReply, transfer: ArrayBuffer[] = []): void {
  main.postMessage(message, transfer);
}

async function start(): Promise<void> {
  await useBackend(init.run.backend as BackendName, init.run.threads);
  const layers = init.layers.map((l, i) => layerFromJson(l.className, l.config as tf.serialization.ConfigDict, i === 0 ? init.inputShape : undefined));
  const network = networkFromModel(tf.sequential({ layers }), { numClasses: init.numClasses, grouping: init.unitLayerCounts });
  // Only this stage's units get the main thread's weights and heads; the others are never stepped here.
  const own = network.units.slice(init.first, init.end);
  tf.tidy(() => own.flatMap((u) => u.layers).forEach((l, k) => l.setWeights(l.getWeights().map((w, j) => tf.tensor(init.weights[k][j], w.shape)))));
  const heads: ProjectionHead[] = [];
  own.forEach((u, k) => {
    const { config, projection } = init.heads[k];
    heads[u.index] = new ProjectionHead(config, tf.tensor2d(projection, [projection.length / config.numClasses, config.numClasses]));
  });
  const inputHead = init.inputHead
    ? new ProjectionHead(init.inputHead.config, tf.tensor2d(init.inputHead.projection, [init.inputHead.projection.length / init.numClasses, init.numClasses]))
    : null;
  const trainer = new SllTrainer({ network, heads, inputHead, normalization: null }, init.run.strategy, init.run.epochs, { first: init.first, end: init.end });
  const downstream: MessagePort | null = init.downstream;

  const onStep = (m: StepMessage) => {
    // tf.tidy returns tensors only: handed a typed array it would walk every element looking for tensors.
    const r = tf.tidy(() => {
      const labels = tf.tensor1d(m.y, 'int32');
      const input = tf.tensor(m.h, m.shape);
      const parent = m.v == null ? (init.first === 0 ? trainer.inputParent(input) : null) : tf.tensor2d(m.v, [m.n, init.numClasses]);
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
      const { lrs, lambdas } = trainer.setEpoch(m.epoch);
      reply({ type: 'epoch', stage: init.stage, lrs, lambdas: lambdas ?? [] });
    } else if (m.type === 'state') {
      const weights = own.flatMap((u) => u.layers.map((l) => l.getWeights().map((w) => (w.dataSync() as Float32Array).slice())));
      const optimizers = await Promise.all(trainer.optimizers.map(optimizerState));
      reply({ type: 'state', stage: init.stage, weights, optimizers, tensors: tf.memory().numTensors });
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

start().catch((e: Error) => reply({ type: 'error', who, message: e.message, stack: e.stack ?? '' }));
