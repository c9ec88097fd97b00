/**
 * Elementwise in-place updates of several variables in one WebGPU dispatch (browser-safe): what the fused
 * optimizers (adam.ts, momentum.ts) record once per step, so that a unit's weights and bias take one
 * dispatch rather than one each.
 *
 * A kernel names the storage arrays each variable binds (Adam: p, m, v, g) and the WGSL statements that
 * update element `j` of variable `k`'s arrays (named p0, g0, p1, ...). Variables go in groups as large as the
 * device's storage-buffer limit allows (8 by default: two Adam or momentum variables), and one grid-stride
 * loop runs over the elements of the whole group, variable after variable.
 */
import type * as tf from '@tensorflow/tfjs';
import { computePipeline, recordDispatch, tensorBuffer, type WebGpuBackendInternals } from './tfjs-webgpu.js';

const WORKGROUP = 256;
const MAX_WORKGROUPS = 65535;

/** An elementwise update rule over variables' arrays. */
export interface UpdateKernel {
  /** Names the kernel's pipelines. */
  label: string;
  /** The float32 arrays each variable binds, in order, and whether the kernel writes them; the first sets the length. */
  arrays: readonly { name: string; write: boolean }[];
  /** The body of the WGSL struct bound as the uniform `s`. */
  uniform: string;
  /**
   * WGSL statements that update element `j` of variable `k`'s arrays (each named with `k` appended); its own
   * names must not be an array's name followed by a digit.
   */
  body: (k: number) => string;
}

/** One variable's arrays as tensors, in the kernel's order (all of one size). */
export type UpdateTensors = tf.TensorInfo[];

const sources = new WeakMap<UpdateKernel, string[]>();

/** The WGSL of `kernel` over `count` variables at once (made once: the pipeline cache is keyed by it). */
function updateWgsl(kernel: UpdateKernel, count: number): string {
  let made = sources.get(kernel);
  if (!made) sources.set(kernel, (made = []));
  return (made[count] ??= writeUpdateWgsl(kernel, count));
}

function writeUpdateWgsl(kernel: UpdateKernel, count: number): string {
  const a = kernel.arrays;
  const bindings = Array.from({ length: count }, (_, k) =>
    a.map((x, i) => `@group(0) @binding(${k * a.length + i}) var<storage, ${x.write ? 'read_write' : 'read'}> ${x.name}${k}: array<f32>;`).join('\n'),
  ).join('\n');
  const ends = Array.from({ length: count }, (_, k) => `  let end${k} = ${k === 0 ? '' : `end${k - 1} + `}arrayLength(&${a[0].name}${k});`).join('\n');
  const branches = Array.from({ length: count }, (_, k) => `${k === 0 ? '' : ' else '}if (i < end${k}) {\n      let j = i${k === 0 ? '' : ` - end${k - 1}`};\n${kernel.body(k)}\n    }`).join('');
  return /* wgsl */ `
struct Step { ${kernel.uniform} };
${bindings}
@group(0) @binding(${count * a.length}) var<uniform> s: Step;

@compute @workgroup_size(${WORKGROUP})
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
${ends}
  for (var i = id.x; i < end${count - 1}; i = i + groups.x * ${WORKGROUP}u) {
    ${branches}
  }
}
`;
}

/**
 * Records `kernel` over every variable of `updates` (each its arrays as tensors, in the kernel's order),
 * as few to a dispatch as the device's storage-buffer limit makes necessary, with `uniforms` bound as `s`.
 */
export function recordUpdates(backend: WebGpuBackendInternals, kernel: UpdateKernel, updates: UpdateTensors[], uniforms: GPUBuffer): void {
  const perDispatch = Math.max(1, Math.floor(backend.device.limits.maxStorageBuffersPerShaderStage / kernel.arrays.length));
  for (let first = 0; first < updates.length; first += perDispatch) {
    const group = updates.slice(first, first + perDispatch);
    const buffers: GPUBuffer[] = [];
    let elements = 0;
    for (const tensors of group) {
      const size = tensors[0].shape.reduce((x, y) => x * y, 1);
      tensors.forEach((t, i) => {
        const buffer = tensorBuffer(backend, t, kernel.arrays[i].write);
        // The kernel takes each variable's length from its first array's buffer.
        if (buffer.size !== 4 * size) throw new Error(`${kernel.label}: a buffer of ${buffer.size} bytes holds ${size} float32 values`);
        buffers.push(buffer);
      });
      elements += size;
    }
    const pipeline = computePipeline(backend.device, `${kernel.label}-${group.length}`, updateWgsl(kernel, group.length));
    const workgroups = Math.min(MAX_WORKGROUPS, Math.max(1, Math.ceil(elements / WORKGROUP)));
    recordDispatch(backend, pipeline, [...buffers, uniforms], group.flat(), [workgroups]);
  }
}
