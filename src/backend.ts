/**
 * Backend selection in Node. The tfjs union package is imported (not tfjs-core alone) because only it
 * registers the gradients every trainer needs.
 */
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { useWebGpuKernels } from './gpu/kernels.js';
import { NativeAdamOptimizer } from './native/adam.js';
import { NATIVE_BACKEND_NAME, loadNativeAddon, registerNativeBackend, setNativeThreads } from './native/backend.js';
import { registerAdam } from './train/optimizers.js';
import { registerUnitLossStats } from './objectives/unit-loss.js';
import { nativeUnitLossStats } from './native/unit-loss.js';
import { applyWasmTrainingFixes } from './wasm/training-kernels.js';

// Importing tfjs-backend-wasm registers it as tfjs's default (priority 2), so a user's plain tfjs code would
// run on wasm, without the training fixes that useBackend('wasm') applies. Keep it registered, below cpu.
const wasmFactory = tf.findBackendFactory('wasm');
if (wasmFactory && tf.getBackend() !== 'wasm') {
  tf.removeBackend('wasm');
  tf.registerBackend('wasm', wasmFactory, 0);
}

/**
 * The backends `useBackend` knows: 'auto' is native when its addon is built, else wasm (with a notice saying
 * why); 'webgpu' is tfjs-backend-webgpu on the GPU through Dawn (gpu/webgpu-node.ts).
 */
export type BackendName = 'auto' | 'native' | 'wasm' | 'cpu' | 'webgpu';
/** Every {@link BackendName}. */
export const BACKENDS: readonly BackendName[] = ['auto', 'native', 'wasm', 'cpu', 'webgpu'];

/** A backend that is unknown, unavailable, or failed to initialise. */
export class BackendError extends Error {
  override name = 'BackendError';
}

/**
 * Registers the `native` backend (OpenBLAS addon), its fused Adam, which 'adam' then means while it is in
 * use, and its fused unit loss. False, without throwing, when the addon is not built (loadNativeAddon() says why).
 */
export function registerNative(): boolean {
  if (!registerNativeBackend()) return false;
  registerAdam(NATIVE_BACKEND_NAME, (lr, b1, b2, eps) => new NativeAdamOptimizer(lr, b1, b2, eps));
  registerUnitLossStats(NATIVE_BACKEND_NAME, nativeUnitLossStats);
  return true;
}

/**
 * Makes Dawn `navigator.gpu` and registers tfjs-backend-webgpu on it, both loaded only now (nothing of
 * them for other backends), and says once on stderr which adapter it runs on.
 */
async function loadWebGpu(): Promise<void> {
  const { describeAdapter, installWebGpu, WebGpuUnavailableError } = await import('./gpu/webgpu-node.js');
  let adapter;
  try {
    ({ adapter } = await installWebGpu());
  } catch (e) {
    if (e instanceof WebGpuUnavailableError) throw new BackendError(`backend 'webgpu' is unavailable: ${e.message}`);
    throw e;
  }
  if (tf.findBackendFactory('webgpu')) return;
  await import('@tensorflow/tfjs-backend-webgpu');
  useWebGpuKernels(true);
  console.error(`sll: webgpu on ${describeAdapter(adapter)}`);
}

/**
 * Switches tfjs to `name` and checks that it really is in use: tfjs falls back to `cpu` silently when a
 * backend fails to initialise, which would make training ~30x slower without a word. `threads` sets the
 * native backend's BLAS threads (default: all cores).
 */
export async function useBackend(name: BackendName, threads: number | null = null): Promise<BackendName> {
  if (!BACKENDS.includes(name)) {
    throw new BackendError(`unknown backend '${name}'; available: ${BACKENDS.join(', ')}`);
  }
  if (threads !== null && !(Number.isSafeInteger(threads) && threads >= 1 && threads <= 1024)) {
    throw new BackendError(`threads must be an integer from 1 to 1024 (or null: all cores), got ${String(threads)}`);
  }
  if (name === 'auto') {
    const addon = loadNativeAddon();
    if (addon.ok) return useBackend('native', threads);
    console.error(`sll: native backend unavailable (${addon.reason}); using wasm`);
    return useBackend('wasm', threads);
  }
  if (name === 'native') {
    const addon = loadNativeAddon();
    if (!addon.ok || !registerNative()) {
      throw new BackendError(`backend 'native' is unavailable: ${addon.ok ? 'registration failed' : addon.reason}`);
    }
    setNativeThreads(threads ?? os.availableParallelism());
  }
  if (name === 'wasm') {
    try {
      applyWasmTrainingFixes();
    } catch (e) {
      throw new BackendError((e as Error).message);
    }
  }
  if (name === 'webgpu') await loadWebGpu();
  const ok = await tf.setBackend(name);
  await tf.ready();
  if (!ok || tf.getBackend() !== name) {
    throw new BackendError(`backend '${name}' failed to initialise (tfjs reports '${tf.getBackend()}')`);
  }
  // tfjs-backend-cpu greets its first use in Node with advice to install tfjs-node; sll's answer to that
  // is its native backend, and the greeting only misleads: mark the backend as used.
  const cpu = tf.backend() as unknown as { firstUse?: boolean };
  if (cpu.firstUse === true) cpu.firstUse = false;
  return name;
}

/** The backend tfjs is really using now (tf.getBackend()). */
export function activeBackend(): string {
  return tf.getBackend();
}
