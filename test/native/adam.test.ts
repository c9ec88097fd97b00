/** NativeAdamOptimizer against tfjs's Adam (tf.train.adam) on the cpu backend. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { NativeAdamOptimizer } from '../../src/native/adam.js';
import { assertClose, countAddonCalls, randomArray, requireNative, sizeOf, use } from './helpers.js';

const LR = 1e-3;
const B1 = 0.9;
const B2 = 0.999;
const EPS = 1e-8;
const SHAPES = [[50, 30], [30], [7, 3, 2], [1]];

type Backend = 'native' | 'cpu';

/** Variables with seeded values, named uniquely per run. */
let run = 0;
function makeVariables(): tf.Variable[] {
  run++;
  return SHAPES.map((shape, i) => tf.variable(tf.tensor(randomArray(sizeOf(shape), 10 + i), shape), true, `adamtest_${run}_${i}`));
}

/** Deterministic gradients of step `step` (independent of the values, to test the optimizer alone). */
function gradients(vars: tf.Variable[], step: number): { name: string; tensor: tf.Tensor }[] {
  return vars.map((v, i) => {
    const g = randomArray(sizeOf(v.shape), 1000 * step + i, -0.1, 0.1);
    if (step % 3 === 0) g.fill(0, 0, Math.min(5, g.length)); // some exact zeros
    return { name: v.name, tensor: tf.tensor(g, v.shape) };
  });
}

function newOptimizer(kind: 'native' | 'tfjs'): tf.Optimizer {
  return kind === 'native' ? new NativeAdamOptimizer(LR, B1, B2, EPS) : tf.train.adam(LR, B1, B2, EPS);
}

function setLr(o: tf.Optimizer, lr: number): void {
  (o as unknown as { learningRate: number }).learningRate = lr;
}

/** Runs `steps` Adam steps on `backend`; returns the final values and the optimizer's weights. */
async function trajectory(backend: Backend, kind: 'native' | 'tfjs', steps: number, opts: { share?: boolean } = {}) {
  await use(backend);
  const vars = makeVariables();
  const opt = newOptimizer(kind);
  // A clone shares the variable's storage: the update must not write into it (copy-on-write).
  const clones = opts.share ? vars.map((v) => v.clone()) : [];
  const cloneValues = clones.map((c) => Float32Array.from(c.dataSync()));
  for (let s = 1; s <= steps; s++) {
    if (s === 11) setLr(opt, LR / 2);
    const grads = gradients(vars, s);
    opt.applyGradients(grads);
    tf.dispose(grads.map((g) => g.tensor));
  }
  clones.forEach((c, i) => assert.deepEqual(Float32Array.from(c.dataSync()), cloneValues[i], 'a clone of a variable is untouched'));
  const values = vars.map((v) => Float32Array.from(v.dataSync()));
  const weights = await opt.getWeights();
  const state = weights.map((w) => ({ name: w.name, values: Float32Array.from(w.tensor.dataSync()) }));
  tf.dispose([...vars, ...clones]);
  opt.dispose();
  return { values, state };
}

function compare(a: Awaited<ReturnType<typeof trajectory>>, b: Awaited<ReturnType<typeof trajectory>>, rtol: number, what: string) {
  a.values.forEach((v, i) => assertClose(v, b.values[i], rtol, `${what}: variable ${i}`));
  assert.equal(a.state.length, b.state.length);
  a.state.forEach((s, i) => {
    assert.equal(s.name.replace(/adamtest_\d+_/, ''), b.state[i].name.replace(/adamtest_\d+_/, ''), 'weight names');
    // Moments are sums with cancellation: judged on the scale of each tensor.
    assertClose(s.values, b.state[i].values, 1e-5, `${what}: ${s.name}`, 0.05);
  });
}

test('NativeAdam on native matches tfjs Adam on cpu within 1e-6 over 20 steps (lr changed at step 11)', async () => {
  requireNative();
  const reference = await trajectory('cpu', 'tfjs', 20);
  const native = await trajectory('native', 'native', 20);
  compare(native, reference, 1e-6, 'native vs cpu');
  assert.equal(native.state[0].name, 'iter');
  assert.equal(native.state[0].values[0], 20);
});

test('NativeAdam writes through fresh buffers when storage is shared (copy-on-write) with the same result', async () => {
  requireNative();
  const reference = await trajectory('cpu', 'tfjs', 20);
  const shared = await trajectory('native', 'native', 20, { share: true });
  compare(shared, reference, 1e-6, 'shared storage');
});

test('NativeAdam on the plain cpu backend (read, update natively, write back) matches tfjs Adam', async () => {
  requireNative();
  const reference = await trajectory('cpu', 'tfjs', 20);
  const onCpu = await trajectory('cpu', 'native', 20);
  compare(onCpu, reference, 1e-6, 'NativeAdam on cpu');
});

test('NativeAdam makes one native call per variable and updates in place', async () => {
  requireNative();
  await use('native');
  const vars = makeVariables();
  const opt = new NativeAdamOptimizer(LR, B1, B2, EPS);
  const g0 = gradients(vars, 1);
  opt.applyGradients(g0); // creates the moments
  tf.dispose(g0.map((g) => g.tensor));
  const backend = tf.backend() as unknown as { data: { get(id: object): { values: unknown } } };
  const storage = vars.map((v) => backend.data.get(v.dataId).values);
  const grads = gradients(vars, 2);
  const { calls } = await countAddonCalls(() => opt.applyGradients(grads));
  assert.equal(calls.adam, vars.length);
  vars.forEach((v, i) => assert.equal(backend.data.get(v.dataId).values, storage[i], 'same array: updated in place'));
  tf.dispose([...vars, ...grads.map((g) => g.tensor)]);
  opt.dispose();
});

test('NativeAdam keeps its state in tfjs tensors: counted by tf.memory, flat across steps, freed by dispose', async () => {
  requireNative();
  await use('native');
  const vars = makeVariables();
  const start = tf.memory().numTensors;
  const opt = new NativeAdamOptimizer(LR, B1, B2, EPS);
  assert.equal(tf.memory().numTensors, start, 'the beta powers are float32 numbers, not tensors');
  const step = (s: number) => {
    const grads = gradients(vars, s);
    opt.applyGradients(grads);
    tf.dispose(grads.map((g) => g.tensor));
  };
  step(1);
  const afterFirst = tf.memory().numTensors;
  assert.equal(afterFirst, start + 2 * vars.length, 'one m and one v per variable');
  for (let s = 2; s <= 20; s++) step(s);
  assert.equal(tf.memory().numTensors, afterFirst, 'no tensor leaks across steps');
  opt.dispose();
  assert.equal(tf.memory().numTensors, start);
  tf.dispose(vars);
});

test('getWeights/setWeights round-trip between NativeAdam and tfjs Adam in both directions', async () => {
  requireNative();
  // tfjs Adam runs 5 steps on cpu; its state moves into a NativeAdam on native, which runs 5 more; a
  // tfjs Adam running all 10 on cpu is the reference. Then the same the other way round.
  for (const [first, second] of [['tfjs', 'native'], ['native', 'tfjs']] as const) {
    await use('cpu');
    const refVars = makeVariables();
    const ref = newOptimizer('tfjs');
    for (let s = 1; s <= 10; s++) {
      const g = gradients(refVars, s);
      ref.applyGradients(g);
      tf.dispose(g.map((x) => x.tensor));
    }
    const expected = refVars.map((v) => Float32Array.from(v.dataSync()));

    await use(first === 'native' ? 'native' : 'cpu');
    const vars = makeVariables();
    const a = newOptimizer(first);
    for (let s = 1; s <= 5; s++) {
      const g = gradients(vars, s);
      a.applyGradients(g);
      tf.dispose(g.map((x) => x.tensor));
    }
    const saved = (await a.getWeights()).map((w) => ({ name: w.name, values: Float32Array.from(w.tensor.dataSync()), shape: w.tensor.shape, dtype: w.tensor.dtype }));
    const values = vars.map((v) => ({ values: Float32Array.from(v.dataSync()), shape: v.shape }));
    a.dispose();
    tf.dispose(vars);

    await use(second === 'native' ? 'native' : 'cpu');
    const vars2 = values.map((v, i) => tf.variable(tf.tensor(v.values, v.shape), true, `roundtrip_${first}_${run}_${i}`));
    run++;
    const b = newOptimizer(second);
    await b.setWeights(saved.map((w) => ({ name: w.name, tensor: tf.tensor(w.values, w.shape, w.dtype as 'float32') })));
    assert.equal(b.iterations, 5);
    for (let s = 6; s <= 10; s++) {
      const g = gradients(vars2, s);
      b.applyGradients(g);
      tf.dispose(g.map((x) => x.tensor));
    }
    // tfjs's setWeights recomputes beta^t as pow(beta, t + 1) rather than the running product: 1e-5.
    vars2.forEach((v, i) => assertClose(v.dataSync(), expected[i], 1e-5, `${first} -> ${second}: variable ${i}`));
    b.dispose();
    ref.dispose();
    tf.dispose([...vars2, ...refVars]);
  }
});

test('NativeAdam.minimize (inherited) trains a least-squares problem like tfjs Adam', async () => {
  requireNative();
  const fit = async (backend: Backend, kind: 'native' | 'tfjs') => {
    await use(backend);
    const x = tf.tensor(randomArray(40 * 5, 1), [40, 5]);
    const y = tf.matMul(x, tf.tensor(randomArray(5, 2), [5, 1]));
    const w = tf.variable(tf.zeros([5, 1]), true, `lsq_${kind}_${run++}`);
    const opt = newOptimizer(kind);
    setLr(opt, 0.05);
    const losses: number[] = [];
    for (let i = 0; i < 30; i++) {
      const loss = opt.minimize(() => tf.mean(tf.square(tf.sub(tf.matMul(x, w), y))) as tf.Scalar, true)!;
      losses.push(loss.dataSync()[0]);
      loss.dispose();
    }
    const out = Float32Array.from(w.dataSync());
    tf.dispose([x, y, w]);
    opt.dispose();
    return { losses, out };
  };
  const ref = await fit('cpu', 'tfjs');
  const nat = await fit('native', 'native');
  assert.ok(nat.losses[29] < nat.losses[0] / 2, 'the loss falls');
  assertClose(nat.losses, ref.losses, 1e-5, 'losses');
  assertClose(nat.out, ref.out, 1e-4, 'weights');
});

test('NativeAdam rejects a gradient of the wrong shape', async () => {
  requireNative();
  await use('native');
  const v = tf.variable(tf.zeros([3]), true, `bad_${run++}`);
  const opt = new NativeAdamOptimizer(LR, B1, B2, EPS);
  const g = tf.zeros([4]);
  assert.throws(() => opt.applyGradients([{ name: v.name, tensor: g }]), /shape/);
  tf.dispose([v, g]);
  opt.dispose();
});

test('NativeAdam updates variables whose data still lives on another backend (created before a switch)', async () => {
  requireNative();
  const reference = await trajectory('cpu', 'tfjs', 20);
  await use('cpu');
  const vars = makeVariables();
  await use('native');
  const opt = new NativeAdamOptimizer(LR, B1, B2, EPS);
  for (let s = 1; s <= 20; s++) {
    if (s === 11) setLr(opt, LR / 2);
    const grads = gradients(vars, s);
    opt.applyGradients(grads);
    tf.dispose(grads.map((g) => g.tensor));
  }
  vars.forEach((v, i) => assertClose(v.dataSync(), reference.values[i], 1e-6, `variable ${i}`));
  tf.dispose(vars);
  opt.dispose();
});
