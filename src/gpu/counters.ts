/**
 * What a WebGPU step costs, counted at the API: compute dispatches, writes into GPU buffers (tensor data
 * apart from uniform/parameter blocks), readbacks, queue submissions and bind groups made. Counted by
 * wrapping the methods on the prototypes of the WebGPU classes, so every caller (tfjs-backend-webgpu, our
 * own kernels) is seen.
 *
 * tfjs-backend-webgpu moves bytes to the GPU three ways (backend_webgpu.js): `queue.writeBuffer` into a
 * UNIFORM buffer for the shape/parameter block of every program it runs; tensor data through a STORAGE
 * buffer created mapped (written, then unmapped); or, when its pool hands back an unmapped buffer, through
 * a mapped MAP_WRITE staging buffer copied over. A write counts as a uniform write when its buffer has the
 * UNIFORM usage flag and as a tensor-data upload otherwise; a mapped write counts when the buffer is
 * unmapped (buffers mapped to be read, MAP_READ, are readbacks and count at `mapAsync`).
 */

/** Calls made since the counters were (re)set. */
export interface GpuCounts {
  /** `GPUComputePassEncoder.dispatchWorkgroups` (and its indirect form). */
  dispatches: number;
  /** Tensor data written to the GPU: `writeBuffer` into a non-uniform buffer, or a mapped write unmapped. */
  uploads: number;
  /** Bytes of those uploads. */
  uploadBytes: number;
  /** `writeBuffer` (or a mapped write) into a UNIFORM buffer: shape and parameter blocks. */
  uniformWrites: number;
  /** `GPUBuffer.mapAsync` for reading: each one is a wait for the GPU and a copy back to the CPU. */
  readbacks: number;
  /** `GPUQueue.submit` calls. */
  submits: number;
  /** `GPUDevice.createBindGroup`: each costs the host tens of microseconds (our dispatches find theirs again). */
  bindGroups: number;
}

/** Live counters over every WebGPU call in this process (see {@link installGpuCounters}). */
export interface GpuCounters {
  /** A copy of the counts now. */
  read(): GpuCounts;
  /** Sets every count back to zero. */
  reset(): void;
}

/** The WebGPU classes whose methods are counted (as `globals` of the npm `webgpu` package, or a browser's globalThis). */
export interface WebGpuClasses {
  GPUDevice: { prototype: object };
  GPUComputePassEncoder: { prototype: object };
  GPUQueue: { prototype: object };
  GPUBuffer: { prototype: object };
  GPUBufferUsage: { UNIFORM: number; MAP_READ: number };
  GPUMapMode: { READ: number };
}

const zero = (): GpuCounts => ({ dispatches: 0, uploads: 0, uploadBytes: 0, uniformWrites: 0, readbacks: 0, submits: 0, bindGroups: 0 });
const counts = zero();
const installed = new WeakSet<object>();

type Method = (this: unknown, ...args: never[]) => unknown;

/** Replaces `proto[name]` by a function that calls `before` with the call's target and arguments, then the original. */
function wrap(proto: object, name: string, before: (self: never, args: never[]) => void): void {
  const original = (proto as Record<string, Method | undefined>)[name];
  if (typeof original !== 'function') throw new Error(`WebGPU has no ${name} to count`);
  Object.defineProperty(proto, name, {
    configurable: true,
    writable: true,
    value: function (this: never, ...args: never[]) {
      before(this, args);
      return original.apply(this, args);
    },
  });
}

/**
 * Starts counting the WebGPU calls made through `classes` (once per set of classes; later calls return
 * the same counters). Install before the first GPU work to be counted; the wrappers cost one function
 * call each and stay for the process's life.
 */
export function installGpuCounters(classes: WebGpuClasses): GpuCounters {
  const { GPUDevice, GPUComputePassEncoder, GPUQueue, GPUBuffer, GPUBufferUsage, GPUMapMode } = classes;
  if (!installed.has(GPUQueue.prototype)) {
    installed.add(GPUQueue.prototype);
    type Buffer = { usage: number; size: number; mapState: string };
    const isUniform = (b: Buffer) => (b.usage & GPUBufferUsage.UNIFORM) !== 0;
    const countWrite = (b: Buffer, bytes: number) => {
      if (isUniform(b)) counts.uniformWrites++;
      else {
        counts.uploads++;
        counts.uploadBytes += bytes;
      }
    };
    wrap(GPUComputePassEncoder.prototype, 'dispatchWorkgroups', () => counts.dispatches++);
    wrap(GPUComputePassEncoder.prototype, 'dispatchWorkgroupsIndirect', () => counts.dispatches++);
    // writeBuffer(buffer, bufferOffset, data, dataOffset?, size?): size counts elements of a typed array.
    wrap(GPUQueue.prototype, 'writeBuffer', (_q, args: unknown[]) => {
      const data = args[2] as ArrayBufferView | ArrayBuffer;
      const element = ArrayBuffer.isView(data) && 'BYTES_PER_ELEMENT' in data ? (data.BYTES_PER_ELEMENT as number) : 1;
      const size = args[4] as number | undefined;
      countWrite(args[0] as Buffer, size !== undefined ? size * element : data.byteLength - ((args[3] as number | undefined) ?? 0) * element);
    });
    wrap(GPUQueue.prototype, 'submit', () => counts.submits++);
    wrap(GPUDevice.prototype, 'createBindGroup', () => counts.bindGroups++);
    wrap(GPUBuffer.prototype, 'mapAsync', (_b, args: unknown[]) => {
      if (((args[0] as number) & GPUMapMode.READ) !== 0) counts.readbacks++;
    });
    wrap(GPUBuffer.prototype, 'unmap', (b: Buffer) => {
      if (b.mapState === 'mapped' && (b.usage & GPUBufferUsage.MAP_READ) === 0) countWrite(b, b.size);
    });
  }
  return {
    read: () => ({ ...counts }),
    reset: () => void Object.assign(counts, zero()),
  };
}
