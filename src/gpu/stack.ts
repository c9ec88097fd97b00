/**
 * tf.stack along the first axis on the `webgpu` backend as one dispatch of our own (browser-safe).
 *
 * A training step stacks its units' stats rows ([4] each) into its [units, 4] table: in tfjs-backend-webgpu
 * that is a Concat program, which costs the host a shader key, a uniform block and a bind group every step
 * (about a tenth of an SLL MLP step's host time). Here the size sits in a constant uniform and the bind group
 * is found again (tfjs-webgpu.ts). Up to {@link MAX_INPUTS} float32 tensors of one shape; every other Pack
 * goes to tfjs's kernel.
 */
import * as tf from '@tensorflow/tfjs';
import { computePipeline, constantUniformBuffer, inFront, recordDispatch, stockKernel, tensorBuffer, webGpuBackend } from './tfjs-webgpu.js';

/** Inputs a dispatch binds besides its output and size: WebGPU's default of 8 storage buffers, less one. */
const MAX_INPUTS = 7;
const WORKGROUP = 64;
const MAX_WORKGROUPS = 65535;

/** WGSL stacking `k` arrays of S.n floats into out [k, n]. */
function stackWgsl(k: number): string {
  const inputs = Array.from({ length: k }, (_, i) => i);
  return /* wgsl */ `
struct Size { n: u32, pad0: u32, pad1: u32, pad2: u32 };
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@group(0) @binding(1) var<uniform> S: Size;
${inputs.map((i) => `@group(0) @binding(${i + 2}) var<storage, read> x${i}: array<f32>;`).join('\n')}

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  for (var j = id.x; j < S.n; j += groups.x * ${WORKGROUP}u) {
${inputs.map((i) => `    out[${i}u * S.n + j] = x${i}[j];`).join('\n')}
  }
}
`;
}

/** The WGSL for each number of inputs. */
const wgsl = new Map<number, string>();

type KernelFunc = tf.KernelConfig['kernelFunc'];

/** Pack's kernel for webgpu: a few float32 tensors of one shape along axis 0 here, the rest by tfjs. */
const pack: KernelFunc = (args) => {
  const xs = Object.values(args.inputs) as tf.TensorInfo[];
  const { axis } = args.attrs as unknown as { axis: number };
  const shape = xs.length > 0 ? xs[0].shape : [];
  const n = tf.util.sizeFromShape(shape);
  const along0 = axis === 0 || axis === -(shape.length + 1);
  if (!along0 || xs.length === 0 || xs.length > MAX_INPUTS || n === 0 || xs.some((x) => x.dtype !== 'float32' || !tf.util.arraysEqual(x.shape, shape))) {
    return stockKernel('Pack')(args);
  }
  const backend = webGpuBackend();
  const out = (args.backend as unknown as { makeTensorInfo(shape: number[], dtype: tf.DataType): tf.TensorInfo }).makeTensorInfo([xs.length, ...shape], 'float32');
  const buffers = [tensorBuffer(backend, out, true), constantUniformBuffer(backend, Uint32Array.from([n, 0, 0, 0]).buffer), ...xs.map((x) => tensorBuffer(backend, x))];
  let code = wgsl.get(xs.length);
  if (!code) wgsl.set(xs.length, (code = stackWgsl(xs.length)));
  const pipeline = computePipeline(backend.device, `sll-stack-${xs.length}`, code);
  recordDispatch(backend, pipeline, buffers, [out, ...xs], [Math.min(MAX_WORKGROUPS, Math.ceil(n / WORKGROUP))]);
  return out;
};

/** Puts this stack in front of tfjs-webgpu's `Pack` (on), or tfjs's kernel back (off). */
export function useStack(on: boolean): void {
  inFront('Pack', pack, on);
}
