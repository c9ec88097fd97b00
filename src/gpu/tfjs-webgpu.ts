/**
 * Our own compute dispatches inside tfjs-backend-webgpu's command stream (browser-safe: nothing of Node).
 *
 * tfjs-backend-webgpu 4.22 records every kernel into one command encoder and compute pass, submitted every
 * WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE dispatches or when something is read. A fused kernel of ours that
 * reads and writes tensors' buffers in place must go into that same stream, in order, and must keep the
 * buffers it binds alive until the stream is submitted: `recordDispatch` does what the backend's own
 * recordAndSubmit does for that. It relies on the backend's fields named below (pinned: tfjs 4.22.0).
 */
import * as tf from '@tensorflow/tfjs';

/** The parts of tfjs-backend-webgpu's WebGPUBackend that our dispatches use. */
export interface WebGpuBackendInternals {
  device: GPUDevice;
  queue: GPUQueue;
  commandEncoder: GPUCommandEncoder | null;
  computePassEncoder: GPUComputePassEncoder | null;
  dispatchCountInPass: number;
  commandQueueOwnedIds: WeakSet<object>;
  uniformPendingDisposal: GPUBuffer[];
  tensorMap: { get(dataId: object): { resource?: unknown; values?: unknown; refCount: number } | undefined };
  bufferManager: { acquireBuffer(size: number, usage: number): GPUBuffer };
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  uploadToGPU(dataId: object): void;
  refCount(dataId: object): number;
}

/** tfjs's active backend as WebGPU internals; throws when it is not `webgpu`. */
export function webGpuBackend(): WebGpuBackendInternals {
  if (tf.getBackend() !== 'webgpu') throw new Error(`needs the webgpu backend; the active one is '${tf.getBackend()}'`);
  const b = tf.backend() as unknown as Partial<WebGpuBackendInternals>;
  for (const key of ['device', 'bufferManager', 'tensorMap', 'ensureCommandEncoderReady', 'submitQueue', 'uploadToGPU'] as const) {
    if (b[key] == null) throw new Error(`tfjs-backend-webgpu has no '${key}': sll's fused WebGPU kernels need @tensorflow/tfjs-backend-webgpu 4.22`);
  }
  return b as WebGpuBackendInternals;
}

/**
 * The GPU buffer holding tensor `t`'s data, uploaded first if it is still on the CPU. `writes`: the kernel
 * will change the buffer in place, so any copy of the values tfjs cached on the CPU (after a read) is
 * dropped, and reads see the new values.
 */
export function tensorBuffer(backend: WebGpuBackendInternals, t: tf.TensorInfo, writes = false): GPUBuffer {
  backend.uploadToGPU(t.dataId);
  const data = backend.tensorMap.get(t.dataId);
  if (!data || !(data.resource instanceof GPUBuffer)) throw new Error(`a tensor of shape [${t.shape}] is not held in a GPU buffer`);
  if (writes) data.values = null;
  return data.resource;
}

/**
 * Gives each of `variables` storage of its own before a kernel updates it in place, so that no other tensor
 * sharing that storage (a clone, or a tensor the variable was assigned from) changes with it.
 */
export function ownStorage(backend: WebGpuBackendInternals, variables: tf.Variable[]): void {
  for (const v of variables) {
    if (backend.refCount(v.dataId) > 1) {
      const own = tf.tidy(() => tf.add(v, tf.zerosLike(v)));
      v.assign(own);
      own.dispose();
    }
  }
}

/** An uninitialised float32 tensor on the webgpu backend, for a kernel of ours to write whole. */
export function emptyTensor(shape: number[]): tf.Tensor {
  const backend = tf.backend() as unknown as { makeTensorInfo(shape: number[], dtype: tf.DataType): tf.TensorInfo };
  return tf.engine().makeTensorFromTensorInfo(backend.makeTensorInfo(shape, 'float32'));
}

/**
 * A uniform buffer from the backend's pool holding `values`. It stays the caller's until handed back with
 * {@link releaseAfterSubmit} after its last dispatch is recorded: the backend may submit in between (every
 * WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE dispatches), and a buffer back in the pool could be rewritten by the
 * next program before a dispatch recorded later reads it.
 */
export function uniformBuffer(backend: WebGpuBackendInternals, values: ArrayBuffer): GPUBuffer {
  const buffer = backend.bufferManager.acquireBuffer(values.byteLength, GPUBufferUsage.COPY_DST | GPUBufferUsage.UNIFORM);
  backend.queue.writeBuffer(buffer, 0, values);
  return buffer;
}

const constants = new WeakMap<GPUDevice, Map<string, GPUBuffer>>();
/** Past this many constant uniform buffers on a device the cache starts anew (those in use stay valid). */
const CONSTANT_UNIFORMS = 1024;

/**
 * A uniform buffer holding `values` that is never written again: one per distinct content on a device, made
 * and written the first time, then bound as it is (no write per dispatch, and the same buffer every time, so
 * the dispatch's bind group is found again). For parameters that repeat from step to step (shapes, a unit's
 * lambda); values that change every step go in a {@link uniformBuffer}. Not to be released.
 */
export function constantUniformBuffer(backend: WebGpuBackendInternals, values: ArrayBuffer): GPUBuffer {
  let cache = constants.get(backend.device);
  if (!cache) constants.set(backend.device, (cache = new Map()));
  const key = new Uint32Array(values).join(',');
  let buffer = cache.get(key);
  if (!buffer) {
    if (cache.size >= CONSTANT_UNIFORMS) cache.clear();
    buffer = backend.device.createBuffer({ size: values.byteLength, usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.UNIFORM });
    backend.queue.writeBuffer(buffer, 0, values);
    cache.set(key, buffer);
  }
  return buffer;
}

/** Returns a {@link uniformBuffer} to the pool once the work recorded so far is submitted. */
export function releaseAfterSubmit(backend: WebGpuBackendInternals, buffer: GPUBuffer): void {
  backend.uniformPendingDisposal.push(buffer);
}

/** Bind groups made for a pipeline, by the buffers they bind (see {@link bindGroup}). */
const bindGroups = new WeakMap<GPUComputePipeline, Map<string, GPUBindGroup>>();
/** A number for each buffer ever bound, naming it in bindGroups' keys. */
const bufferIds = new WeakMap<GPUBuffer, number>();
let buffersNamed = 0;
/** Past this many bind groups a pipeline's are dropped and made anew, so that the cache stays bounded. */
const BIND_GROUPS_PER_PIPELINE = 256;

/**
 * The bind group of `buffers` at bindings 0, 1, ... for `pipeline`, made once per set of buffers. A bind
 * group only names buffers, so one made for the same buffers serves again, whatever they hold now; tfjs's
 * buffer pool hands the same buffers out step after step, so a training step's groups are made in its
 * first steps and then found (each made anew costs the host tens of microseconds).
 */
function bindGroup(device: GPUDevice, pipeline: GPUComputePipeline, buffers: GPUBuffer[]): GPUBindGroup {
  let cache = bindGroups.get(pipeline);
  if (!cache) bindGroups.set(pipeline, (cache = new Map()));
  const key = buffers
    .map((b) => {
      let id = bufferIds.get(b);
      if (id === undefined) bufferIds.set(b, (id = buffersNamed++));
      return id;
    })
    .join(',');
  let group = cache.get(key);
  if (!group) {
    if (cache.size >= BIND_GROUPS_PER_PIPELINE) cache.clear();
    group = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: buffers.map((buffer, binding) => ({ binding, resource: { buffer } })) });
    cache.set(key, group);
  }
  return group;
}

/**
 * Records one dispatch of `pipeline` with `buffers` bound at 0, 1, ... (group 0) into the backend's current
 * compute pass. `tensors`: those whose buffers are bound, kept from reuse until the work is submitted.
 */
export function recordDispatch(
  backend: WebGpuBackendInternals,
  pipeline: GPUComputePipeline,
  buffers: GPUBuffer[],
  tensors: tf.TensorInfo[],
  workgroups: [number, number?, number?],
): void {
  const group = bindGroup(backend.device, pipeline, buffers);
  for (const t of tensors) backend.commandQueueOwnedIds.add(t.dataId);
  backend.ensureCommandEncoderReady();
  backend.computePassEncoder ??= backend.commandEncoder!.beginComputePass({});
  backend.computePassEncoder.setPipeline(pipeline);
  backend.computePassEncoder.setBindGroup(0, group);
  backend.computePassEncoder.dispatchWorkgroups(workgroups[0], workgroups[1] ?? 1, workgroups[2] ?? 1);
  backend.dispatchCountInPass++;
  if (backend.dispatchCountInPass >= tf.env().getNumber('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE')) {
    backend.endComputePassEncoder();
    backend.submitQueue();
  }
}

/**
 * Submits the GPU work recorded so far, if the active backend is `webgpu` (elsewhere it does nothing).
 * SequentialEngine calls it at the end of every step. tfjs-backend-webgpu takes a freed buffer back into its
 * pool only when the work using it is submitted, and hands out the last one taken back first; so when the
 * submits (every WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE dispatches) fall at other points of each step, each step
 * gets the same buffers in another order and nearly every dispatch needs a new bind group (15 of the SLL MLP
 * step's 22 on SwiftShader). Submitted at each step's end, every step gets its buffers as the one before
 * did, and our dispatches find their bind groups again.
 */
export function submitRecorded(): void {
  if (tf.getBackend() !== 'webgpu') return;
  const backend = webGpuBackend();
  if (backend.commandEncoder == null) return;
  backend.endComputePassEncoder();
  backend.submitQueue();
}

const pipelines = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();

/** The compute pipeline of WGSL `code` (entry point `main`) on `device`, compiled once per device. */
export function computePipeline(device: GPUDevice, label: string, code: string): GPUComputePipeline {
  let cache = pipelines.get(device);
  if (!cache) pipelines.set(device, (cache = new Map()));
  let pipeline = cache.get(code);
  if (!pipeline) {
    pipeline = device.createComputePipeline({ label, layout: 'auto', compute: { module: device.createShaderModule({ label, code }), entryPoint: 'main' } });
    cache.set(code, pipeline);
  }
  return pipeline;
}

type KernelFunc = tf.KernelConfig['kernelFunc'];
/** tfjs-backend-webgpu's own kernels that one of ours stands in front of, by name. */
const stockKernels = new Map<string, KernelFunc>();

/** tfjs-backend-webgpu's own kernel `name`, as it was before {@link inFront} put one of ours in front of it. */
export function stockKernel(name: string): KernelFunc {
  const stock = stockKernels.get(name) ?? tf.getKernel(name, 'webgpu')?.kernelFunc;
  if (!stock) throw new Error(`tfjs-backend-webgpu is not loaded: it registers the ${name} kernel sll wraps`);
  return stock;
}

/**
 * Registers `ours` as webgpu's kernel `name` (on), in front of tfjs's own, which it calls through
 * {@link stockKernel} for the cases it does not take; or puts tfjs's back (off).
 */
export function inFront(name: string, ours: KernelFunc, on: boolean): void {
  const current = tf.getKernel(name, 'webgpu');
  if (!current) throw new Error(`tfjs-backend-webgpu is not loaded: it registers the ${name} kernel sll wraps`);
  if (current.kernelFunc !== ours) stockKernels.set(name, current.kernelFunc);
  if ((current.kernelFunc === ours) === on) return;
  tf.unregisterKernel(name, 'webgpu');
  tf.registerKernel({ ...current, kernelFunc: on ? ours : stockKernels.get(name)! });
}
