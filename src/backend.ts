/**
 * Backend selection. The tfjs union package is imported (not tfjs-core alone) because only it registers
 * the gradients every trainer needs.
 */
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { loadNativeAddon, registerNativeBackend, setNativeThreads } from './native/backend.js';

/** 'auto' is native when its addon is built, else wasm (with a notice saying why). */
export type BackendName = 'auto' | 'native' | 'wasm' | 'cpu';
export const BACKENDS: readonly BackendName[] = ['auto', 'native', 'wasm', 'cpu'];

export class BackendError extends Error {}

/**
 * Switches tfjs to `name` and checks that it really is in use: tfjs falls back to `cpu` silently when a
 * backend fails to initialise, which would make training ~30x slower without a word. `threads` sets the
 * native backend's BLAS threads (default: all cores).
 */
export async function useBackend(name: BackendName, threads: number | null = null): Promise<BackendName> {
  if (!BACKENDS.includes(name)) {
    throw new BackendError(`unknown backend '${name}'; available: ${BACKENDS.join(', ')}`);
  }
  if (name === 'auto') {
    const addon = loadNativeAddon();
    if (addon.ok) return useBackend('native', threads);
    console.error(`sll: native backend unavailable (${addon.reason}); using wasm`);
    return useBackend('wasm', threads);
  }
  if (name === 'native') {
    const addon = loadNativeAddon();
    if (!addon.ok || !registerNativeBackend()) {
      throw new BackendError(`backend 'native' is unavailable: ${addon.ok ? 'registration failed' : addon.reason}`);
    }
    setNativeThreads(threads ?? os.availableParallelism());
  }
  if (name === 'wasm') patchWasmTransposedMatMul();
  const ok = await tf.setBackend(name);
  await tf.ready();
  if (!ok || tf.getBackend() !== name) {
    throw new BackendError(`backend '${name}' failed to initialise (tfjs reports '${tf.getBackend()}')`);
  }
  return name;
}

/** The backend tfjs is really using now (tf.getBackend()). */
export function activeBackend(): string {
  return tf.getBackend();
}

let wasmPatched = false;

/**
 * The wasm MatMul kernels are 10-30x slower with transpose flags than without, and every MatMul gradient
 * uses those flags. Transposing explicitly first (a cheap copy) and multiplying plainly removes that cliff
 * for forward and backward passes alike, at the kernel level where every caller benefits.
 */
function patchWasmTransposedMatMul(): void {
  if (wasmPatched) return;
  wasmPatched = true;
  for (const kernelName of ['BatchMatMul', '_FusedMatMul']) {
    const original = tf.getKernel(kernelName, 'wasm');
    const transpose = tf.getKernel('Transpose', 'wasm');
    if (original == null || transpose == null) throw new BackendError(`wasm kernel ${kernelName} missing`);
    const plain: tf.KernelFunc = (args) => {
      const { inputs, backend, attrs } = args;
      const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
      if (!transposeA && !transposeB) return original.kernelFunc(args);
      const swapLast = (t: tf.TensorInfo): tf.TensorInfo => {
        const perm = t.shape.map((_, i) => i);
        [perm[perm.length - 2], perm[perm.length - 1]] = [perm[perm.length - 1], perm[perm.length - 2]];
        return transpose.kernelFunc({ inputs: { x: t }, backend, attrs: { perm } }) as tf.TensorInfo;
      };
      const a = transposeA ? swapLast(inputs.a!) : inputs.a!;
      const b = transposeB ? swapLast(inputs.b!) : inputs.b!;
      const out = original.kernelFunc({
        inputs: { ...inputs, a, b },
        backend,
        attrs: { ...attrs, transposeA: false, transposeB: false },
      });
      const owner = backend as tf.KernelBackend;
      if (transposeA) owner.disposeData(a.dataId);
      if (transposeB) owner.disposeData(b.dataId);
      return out;
    };
    tf.unregisterKernel(kernelName, 'wasm');
    tf.registerKernel({ ...original, kernelFunc: plain });
  }
}
