/**
 * Sums over the rows of a matrix on the `webgpu` backend in one dispatch (browser-safe): `Sum` over axis 0,
 * and the same reduction with the ReLU gradient applied on the way (fused-layers.ts: a dense or conv
 * layer's dz and db in one pass).
 *
 * tfjs-backend-webgpu reduces along the innermost axis only, so a sum over axis 0 of [B, N] (every dense
 * layer's bias gradient: the sum of dL/dz over the batch) is a transpose and then a reduction, two programs.
 * This kernel sums columns directly: a workgroup takes 16 columns, its 16 x 16 threads each add every 16th
 * row of one column, and the 16 partial sums of a column are added in workgroup memory. Every other Sum goes
 * to tfjs's own kernel.
 */
import * as tf from '@tensorflow/tfjs';
import { computePipeline, constantUniformBuffer, inFront, recordDispatch, stockKernel, tensorBuffer, webGpuBackend, type WebGpuBackendInternals } from './tfjs-webgpu.js';

/** Columns per workgroup, and threads per column (each adding every LANES-th row). */
const COLUMNS = 16;
const LANES = 16;
const MAX_WORKGROUPS = 65535;

/**
 * WGSL of the column sum of x [rows, cols] into out [cols]; `reluGrad`: x is dy, a ReLU layer's output y
 * is bound too, and dz = dy where y > 0 (else 0) is written and summed instead of dy.
 */
function columnSumWgsl(reluGrad: boolean): string {
  return /* wgsl */ `
struct Shape { rows: u32, cols: u32 };
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> S: Shape;
${reluGrad ? `@group(0) @binding(3) var<storage, read> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> dz: array<f32>;` : ''}
var<workgroup> partial: array<f32, ${COLUMNS * LANES}>;

@compute @workgroup_size(${COLUMNS}, ${LANES})
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let c = (wid.x + wid.y * groups.x) * ${COLUMNS}u + lid.x;
  var s = 0.0;
  if (c < S.cols) {
    for (var r = lid.y; r < S.rows; r += ${LANES}u) {
      let i = r * S.cols + c;
      ${reluGrad ? `let g = select(0.0, x[i], y[i] > 0.0);
      dz[i] = g;
      s += g;` : 's += x[i];'}
    }
  }
  partial[lid.y * ${COLUMNS}u + lid.x] = s;
  workgroupBarrier();
  if (lid.y == 0u && c < S.cols) {
    var t = 0.0;
    for (var k = 0u; k < ${LANES}u; k++) { t += partial[k * ${COLUMNS}u + lid.x]; }
    out[c] = t;
  }
}
`;
}

const COLUMN_SUM_WGSL = columnSumWgsl(false);
const RELU_COLUMN_SUM_WGSL = columnSumWgsl(true);

/**
 * Records the column sums of x (all but the last axis are rows) into `out` [cols]; with `relu`, x is dy and
 * dz = dy ⊙ [y > 0] is written into `relu.dz` and summed instead.
 */
export function recordColumnSum(
  backend: WebGpuBackendInternals,
  x: tf.TensorInfo,
  out: tf.TensorInfo,
  relu?: { y: tf.TensorInfo; dz: tf.TensorInfo },
): void {
  const cols = x.shape[x.shape.length - 1];
  const rows = tf.util.sizeFromShape(x.shape) / cols;
  const uniforms = constantUniformBuffer(backend, Uint32Array.from([rows, cols]).buffer);
  const groups = Math.ceil(cols / COLUMNS);
  const workgroups: [number, number] = groups <= MAX_WORKGROUPS ? [groups, 1] : [MAX_WORKGROUPS, Math.ceil(groups / MAX_WORKGROUPS)];
  const buffers = [tensorBuffer(backend, x), tensorBuffer(backend, out, true), uniforms];
  const tensors = [x, out];
  if (relu) {
    buffers.push(tensorBuffer(backend, relu.y), tensorBuffer(backend, relu.dz, true));
    tensors.push(relu.y, relu.dz);
  }
  const pipeline = relu
    ? computePipeline(backend.device, 'sll-relu-column-sum', RELU_COLUMN_SUM_WGSL)
    : computePipeline(backend.device, 'sll-column-sum', COLUMN_SUM_WGSL);
  recordDispatch(backend, pipeline, buffers, tensors, workgroups);
}

type KernelFunc = tf.KernelConfig['kernelFunc'];
/** Sum's kernel for webgpu: columns of a float32 matrix here, anything else by tfjs's kernel. */
const sum: KernelFunc = (args) => {
  const { inputs, backend: kernelBackend, attrs } = args;
  const x = (inputs as { x: tf.TensorInfo }).x;
  const { axis, keepDims } = attrs as unknown as { axis: number | number[]; keepDims: boolean };
  const axes = tf.util.parseAxisParam(axis, x.shape);
  if (x.shape.length !== 2 || x.dtype !== 'float32' || axes.length !== 1 || axes[0] !== 0 || x.shape[0] * x.shape[1] === 0) return stockKernel('Sum')(args);
  const cols = x.shape[1];
  const out = (kernelBackend as unknown as { makeTensorInfo(shape: number[], dtype: tf.DataType): tf.TensorInfo }).makeTensorInfo(keepDims ? [1, cols] : [cols], 'float32');
  recordColumnSum(webGpuBackend(), x, out);
  return out;
};

/** Puts the column sum in front of tfjs-webgpu's `Sum` (on), or tfjs's kernel back (off). */
export function useColumnSum(on: boolean): void {
  inFront('Sum', sum, on);
}
