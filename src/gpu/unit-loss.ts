/**
 * The unit loss (paper eq. 5), its statistics and its gradient in one WebGPU dispatch (browser-safe).
 *
 * With tfjs's ops the loss, the accuracy count and their gradients are ~40 programs per unit and a scalar
 * upload for each constant. Here one workgroup reads the logits v [B, K], the labels and the parent logits,
 * and writes the loss (a scalar), the stats row [prediction, alignment, total, correct] and dL/dv [B, K],
 * which the backward pass then only scales by the incoming gradient. For one row b, with p = softmax(v_b),
 * q = softmax(parent_b), y the label's one-hot vector:
 *   CE_b = -log p_y,  A_b = -log BC(p, q) = -logsumexp_k((log p_k + log q_k) / 2),
 *   dCE_b/dv = p - y, dA_b/dv = (p - w) / 2 with w = sqrt(p q) / BC(p, q),
 * and L = mean_b CE_b + lambda mean_b A_b, so dL/dv_b = ((p - y) + lambda (p - w) / 2) / B. Without a parent
 * (the first unit, or lambda 0) A is 0 and so is its gradient, as unitLoss has it.
 */
import * as tf from '@tensorflow/tfjs';
import { computePipeline, constantUniformBuffer, emptyTensor, recordDispatch, tensorBuffer, webGpuBackend } from './tfjs-webgpu.js';

const WORKGROUP = 256;

/** WGSL: logsumexp over row `o` (n entries) of the storage array `array` (WGSL functions cannot take it). */
const logSumExp = (suffix: string, array: string) => `
fn logSumExp${suffix}(o: u32, n: u32) -> f32 {
  var m = ${array}[o];
  for (var k = 1u; k < n; k++) { m = max(m, ${array}[o + k]); }
  var s = 0.0;
  for (var k = 0u; k < n; k++) { s += exp(${array}[o + k] - m); }
  return m + log(s);
}`;

export const UNIT_LOSS_WGSL = /* wgsl */ `
struct Params { rows: u32, classes: u32, lambda: f32, hasParent: u32 };
@group(0) @binding(0) var<storage, read> v: array<f32>;
@group(0) @binding(1) var<storage, read> labels: array<i32>;
@group(0) @binding(2) var<storage, read> parent: array<f32>;
@group(0) @binding(3) var<storage, read_write> total: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;
@group(0) @binding(5) var<storage, read_write> grad: array<f32>;
@group(0) @binding(6) var<uniform> P: Params;

var<workgroup> ce: array<f32, ${WORKGROUP}>;
var<workgroup> al: array<f32, ${WORKGROUP}>;
var<workgroup> ok: array<f32, ${WORKGROUP}>;

${logSumExp('V', 'v')}
${logSumExp('Parent', 'parent')}
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(local_invocation_index) t: u32) {
  let K = P.classes;
  let invB = 1.0 / f32(P.rows);
  var ceSum = 0.0;
  var alSum = 0.0;
  var okSum = 0.0;
  for (var b = t; b < P.rows; b += ${WORKGROUP}u) {
    let o = b * K;
    let y = u32(labels[b]);
    let lseV = logSumExpV(o, K);
    ceSum += lseV - v[o + y];
    // argmax, the first index of the maximum (as tf.argMax)
    var best = 0u;
    for (var k = 1u; k < K; k++) { if (v[o + k] > v[o + best]) { best = k; } }
    if (best == y) { okSum += 1.0; }
    if (P.hasParent == 1u) {
      let lseQ = logSumExpParent(o, K);
      var m = -3.4e38;
      for (var k = 0u; k < K; k++) { m = max(m, 0.5 * ((v[o + k] - lseV) + (parent[o + k] - lseQ))); }
      var s = 0.0;
      for (var k = 0u; k < K; k++) { s += exp(0.5 * ((v[o + k] - lseV) + (parent[o + k] - lseQ)) - m); }
      let lseS = m + log(s);
      alSum += -lseS;
      for (var k = 0u; k < K; k++) {
        let p = exp(v[o + k] - lseV);
        let w = exp(0.5 * ((v[o + k] - lseV) + (parent[o + k] - lseQ)) - lseS);
        let hot = select(0.0, 1.0, k == y);
        grad[o + k] = ((p - hot) + P.lambda * 0.5 * (p - w)) * invB;
      }
    } else {
      for (var k = 0u; k < K; k++) {
        let hot = select(0.0, 1.0, k == y);
        grad[o + k] = (exp(v[o + k] - lseV) - hot) * invB;
      }
    }
  }
  ce[t] = ceSum;
  al[t] = alSum;
  ok[t] = okSum;
  for (var half = ${WORKGROUP / 2}u; half > 0u; half = half / 2u) {
    workgroupBarrier();
    if (t < half) {
      ce[t] += ce[t + half];
      al[t] += al[t + half];
      ok[t] += ok[t + half];
    }
  }
  if (t == 0u) {
    let prediction = ce[0] * invB;
    let alignment = select(0.0, al[0] * invB, P.hasParent == 1u);
    let loss = prediction + select(0.0, P.lambda * alignment, P.hasParent == 1u);
    total[0] = loss;
    stats[0] = prediction;
    stats[1] = alignment;
    stats[2] = loss;
    stats[3] = ok[0];
  }
}
`;

/**
 * A scalar's value when tfjs-webgpu still holds it on the CPU (as the gradient's seed dy = 1 that tf.grad
 * makes), else null: reading it then costs nothing, and using it on the GPU would cost an upload.
 */
function cpuValue(t: tf.Tensor): number | null {
  if (t.size !== 1) return null;
  const data = webGpuBackend().tensorMap.get(t.dataId);
  return data && data.resource == null && data.values != null ? Number((data.values as ArrayLike<number>)[0]) : null;
}

/**
 * The unit loss of logits `v` [B, K] against `labels` [B] (int32) and the `parent` logits (or none), and the
 * stats row [prediction, alignment, total, correct], in one dispatch on the `webgpu` backend. `total` is
 * differentiable with respect to `v` (its gradient is computed with it); the stats are not (kept: the
 * caller disposes them).
 */
export function webGpuUnitLossStats(v: tf.Tensor2D, labels: tf.Tensor1D, parent: tf.Tensor2D | null, lambda: number): { total: tf.Scalar; stats: tf.Tensor1D } {
  const [B, K] = v.shape;
  if (labels.dtype !== 'int32' || labels.size !== B) throw new Error(`webGpuUnitLossStats: labels must be int32 [${B}], got ${labels.dtype} [${labels.shape}]`);
  const withParent = parent != null && lambda !== 0;
  if (withParent && !tf.util.arraysEqual(parent.shape, v.shape)) throw new Error(`webGpuUnitLossStats: parent [${parent.shape}] differs from v [${v.shape}]`);
  let stats!: tf.Tensor1D;
  const lossOf = tf.customGrad(((logits: tf.Tensor, save: tf.GradSaveFunc) => {
    const backend = webGpuBackend();
    const total = emptyTensor([]) as tf.Scalar;
    // Kept: customGrad disposes what its forward made but did not return or save; the caller disposes it.
    stats = tf.keep(emptyTensor([4]) as tf.Tensor1D);
    const grad = emptyTensor([B, K]);
    const params = new ArrayBuffer(16);
    new Uint32Array(params, 0, 2).set([B, K]);
    new Float32Array(params, 8, 1)[0] = lambda;
    new Uint32Array(params, 12, 1)[0] = withParent ? 1 : 0;
    const uniforms = constantUniformBuffer(backend, params);
    const inputs = [logits, labels, withParent ? parent : logits] as tf.Tensor[];
    const buffers = [...inputs.map((t) => tensorBuffer(backend, t)), ...[total, stats, grad].map((t) => tensorBuffer(backend, t, true)), uniforms];
    recordDispatch(backend, computePipeline(backend.device, 'sll-unit-loss', UNIT_LOSS_WGSL), buffers, [...inputs, total, stats, grad], [1]);
    save([grad]);
    return { value: total, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => (cpuValue(dy) === 1 ? tf.clone(saved[0]) : tf.mul(dy, saved[0])) };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  const total = lossOf(v) as tf.Scalar;
  return { total, stats };
}
