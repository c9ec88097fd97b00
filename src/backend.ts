/**
 * Backend selection. The tfjs union package is imported (not tfjs-core alone) because only it registers
 * the gradients every trainer needs.
 */
import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { loadNativeAddon, registerNativeBackend, setNativeThreads } from './native/backend.js';
import { applyWasmTrainingFixes } from './wasm/training-kernels.js';

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
  if (name === 'wasm') {
    try {
      applyWasmTrainingFixes();
    } catch (e) {
      throw new BackendError((e as Error).message);
    }
  }
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
