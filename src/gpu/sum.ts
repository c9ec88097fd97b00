/**
 * `Sum` over the rows of a matrix on the `webgpu` backend in one dispatch (browser-safe).
 *
 * tfjs-backend-webgpu reduces along the innermost axis only, so a sum over axis 0 of [B, N] (every dense
 * layer's bias gradient: the sum of dL/dz over the batch) is a transpose and then a reduction, two programs.
 * This kernel sums each column directly; every other Sum goes to tfjs's own kernel.
 */
import * as tf from '@tensorflow/tfjs';
import { computePipeline, recordDispatch, releaseAfterSubmit, tensorBuffer, uniformBuffer, webGpuBackend } from './tfjs-webgpu.js';

const WORKGROUP = 256;

export const COLUMN_SUM_WGSL = /* wgsl */ `
struct Shape { rows: u32, cols: u32 };
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> S: Shape;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let c = id.x + id.y * groups.x * ${WORKGROUP}u;
  if (c >= S.cols) { return; }
  var s = 0.0;
  for (var r = 0u; r < S.rows; r++) { s += x[r * S.cols + c]; }
  out[c] = s;
}
`;

type KernelFunc = tf.KernelConfig['kernelFunc'];
let stockSum: KernelFunc | null = null;

/** Sum's kernel for webgpu: columns of a float32 matrix here, anything else by tfjs's kernel. */
const sum: KernelFunc = (args) => {
  const { inputs, backend: kernelBackend, attrs } = args;
  const x = (inputs as { x: tf.TensorInfo }).x;
  const { axis, keepDims } = attrs as unknown as { axis: number | number[]; keepDims: boolean };
  const axes = tf.util.parseAxisParam(axis, x.shape);
  if (x.shape.length !== 2 || x.dtype !== 'float32' || axes.length !== 1 || axes[0] !== 0 || x.shape[0] * x.shape[1] === 0) return stockSum!(args);
  const backend = webGpuBackend();
  const [rows, cols] = x.shape;
  const out = (kernelBackend as unknown as { makeTensorInfo(shape: number[], dtype: tf.DataType): tf.TensorInfo }).makeTensorInfo(keepDims ? [1, cols] : [cols], 'float32');
  const uniforms = uniformBuffer(backend, Uint32Array.from([rows, cols]).buffer);
  const groups = Math.ceil(cols / WORKGROUP);
  const workgroups: [number, number] = groups <= 65535 ? [groups, 1] : [65535, Math.ceil(groups / 65535)];
  recordDispatch(backend, computePipeline(backend.device, 'sll-column-sum', COLUMN_SUM_WGSL), [tensorBuffer(backend, x), tensorBuffer(backend, out, true), uniforms], [x, out], workgroups);
  releaseAfterSubmit(backend, uniforms);
  return out;
};

/** Puts the column sum in front of tfjs-webgpu's `Sum` (on), or tfjs's kernel back (off). */
export function useColumnSum(on: boolean): void {
  const current = tf.getKernel('Sum', 'webgpu');
  if (!current) throw new Error('tfjs-backend-webgpu is not loaded: it registers the Sum kernel this wraps');
  if (current.kernelFunc !== sum) stockSum = current.kernelFunc;
  if ((current.kernelFunc === sum) === on) return;
  tf.unregisterKernel('Sum', 'webgpu');
  tf.registerKernel({ ...current, kernelFunc: on ? sum : stockSum! });
}
