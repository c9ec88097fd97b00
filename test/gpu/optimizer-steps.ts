/**
 * The check the fused WebGPU optimizers share: six steps over variables of three sizes (a matrix, a vector
 * and a scalar), two variables to a dispatch, a read of the values in the middle (which caches them on the
 * CPU: the in-place update must drop that copy), and the result against the rule written in float64.
 */
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';

/** A deterministic gradient for step s. */
export const gradient = (n: number, s: number): number[] => Array.from({ length: n }, (_, i) => Math.sin(0.37 * i + 1.3 * s) * (1 + (i % 5)));

/**
 * Runs 6 steps of `opt` (the learning rate set to `lrAt(step)` before each, when given) and compares every
 * variable with `reference(initial values, each step's gradient, each step's learning rate)` within 1e-5.
 */
export async function checkOptimizerSteps(
  opt: tf.Optimizer,
  o: { name: string; dispatches: () => number; lrAt?: (step: number) => number; reference: (init: number[], grads: number[][], lrs: number[]) => number[] },
): Promise<void> {
  const shapes = [[37, 11], [300], [1]];
  const inits = shapes.map((sh, k) => Array.from({ length: sh.reduce((a, b) => a * b, 1) }, (_, i) => Math.cos(i + k)));
  const vars = shapes.map((sh, k) => tf.variable(tf.tensor(inits[k], sh), true, `${o.name}-${k}`));
  const grads: number[][][] = vars.map(() => []);
  const lrs: number[] = [];
  for (let s = 0; s < 6; s++) {
    if (o.lrAt) {
      (opt as unknown as { setLearningRate(lr: number): void }).setLearningRate(o.lrAt(s));
      lrs.push(Math.fround(o.lrAt(s)));
    }
    const named = vars.map((v, k) => {
      grads[k].push(gradient(v.size, s));
      return { name: v.name, tensor: tf.tensor(grads[k][s], v.shape) };
    });
    if (s === 3) await Promise.all(vars.map((v) => v.data()));
    const before = o.dispatches();
    opt.applyGradients(named);
    // From step 1 on (step 0 also makes the optimizer's zero state).
    if (s > 0) assert.equal(o.dispatches() - before, Math.ceil(vars.length / 2), 'two variables to a dispatch');
    tf.dispose(named.map((g) => g.tensor));
  }
  for (let k = 0; k < vars.length; k++) {
    const got = await vars[k].data();
    const want = o.reference(inits[k], grads[k], lrs);
    for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= 1e-5 * Math.max(1, Math.abs(want[i])), `${vars[k].name}[${i}]: ${got[i]} vs ${want[i]}`);
  }
  tf.dispose(vars);
}
