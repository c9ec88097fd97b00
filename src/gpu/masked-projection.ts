/**
 * M ⊙ R on the `webgpu` backend in one dispatch, the Bernoulli mask drawn in the kernel (browser-safe).
 *
 * The mask's draws are data/random.ts's counter-based stream (streamBits24): each entry's 24 bits depend only
 * on (key, index) through 32-bit integer arithmetic, so this kernel keeps exactly the entries the CPU backends
 * keep, with no mask uploaded per step and no separate compare, cast and scale programs.
 */
import * as tf from '@tensorflow/tfjs';
import { keepThreshold } from '../data/random.js';
import type { MaskDraw } from '../objectives/projection.js';
import { computePipeline, emptyTensor, recordDispatch, releaseAfterSubmit, tensorBuffer, uniformBuffer, webGpuBackend } from './tfjs-webgpu.js';

const WORKGROUP = 256;
const MAX_WORKGROUPS = 65535;

/**
 * WGSL of data/random.ts's streamBits24(key, i): murmur3's finaliser (fmix32) of key + i * 0x9e3779b9, its
 * top 24 bits. Every kernel that draws a mask draws it with this.
 */
export const STREAM_BITS_WGSL = /* wgsl */ `
fn streamBits24(key: u32, i: u32) -> u32 {
  var h = key + i * 0x9e3779b9u;
  h ^= h >> 16u;
  h *= 0x85ebca6bu;
  h ^= h >> 13u;
  h *= 0xc2b2ae35u;
  h ^= h >> 16u;
  return h >> 8u;
}
`;

export const MASKED_PROJECTION_WGSL = /* wgsl */ `
struct Draw { key: u32, threshold: u32, value: f32, size: u32 };
@group(0) @binding(0) var<storage, read> r: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> D: Draw;
${STREAM_BITS_WGSL}
@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  for (var i = id.x; i < D.size; i = i + groups.x * ${WORKGROUP}u) {
    out[i] = r[i] * select(0.0, D.value, streamBits24(D.key, i) < D.threshold);
  }
}
`;

/** M ⊙ R for one step's mask, in one dispatch (registered for webgpu as the masked projection). */
export function webGpuMaskedProjection(projection: tf.Tensor2D, draw: MaskDraw): tf.Tensor2D {
  const backend = webGpuBackend();
  const out = emptyTensor(projection.shape) as tf.Tensor2D;
  const params = new ArrayBuffer(16);
  new Uint32Array(params, 0, 2).set([draw.key >>> 0, keepThreshold(draw.keep)]);
  new Float32Array(params, 8, 1)[0] = draw.value;
  new Uint32Array(params, 12, 1)[0] = projection.size;
  const uniforms = uniformBuffer(backend, params);
  const buffers = [tensorBuffer(backend, projection), tensorBuffer(backend, out, true), uniforms];
  const workgroups = Math.min(MAX_WORKGROUPS, Math.max(1, Math.ceil(projection.size / WORKGROUP)));
  recordDispatch(backend, computePipeline(backend.device, 'sll-masked-projection', MASKED_PROJECTION_WGSL), buffers, [projection, out], [workgroups]);
  releaseAfterSubmit(backend, uniforms);
  return out;
}
