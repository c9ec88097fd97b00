/**
 * The page's tfjs backend: WebGPU when the browser has an adapter, else WebGL, else wasm (its .wasm
 * files served beside the page, with src/wasm's training fixes: the transposed MatMuls of every gradient
 * are 10-30x slower on wasm without them).
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-webgpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { useWebGpuKernels } from '../src/gpu/kernels.js';
import { applyWasmTrainingFixes } from '../src/wasm/training-kernels.js';

// On WebGPU, the library's fused kernels (Adam, the unit loss, the masked projection) instead of tfjs's
// dozens of programs and scalar uploads.
useWebGpuKernels(true);

/** The backends the page offers, in the order 'auto' tries them. */
export const PAGE_BACKENDS = ['webgpu', 'webgl', 'wasm', 'cpu'] as const;
export type PageBackend = (typeof PAGE_BACKENDS)[number];

let wasmReady = false;

async function tryBackend(name: PageBackend): Promise<boolean> {
  if (name === 'webgpu' && !('gpu' in navigator)) return false;
  if (name === 'wasm' && !wasmReady) {
    setWasmPaths(new URL('tfjs-wasm/', document.baseURI).href);
    applyWasmTrainingFixes();
    wasmReady = true;
  }
  try {
    if (!(await tf.setBackend(name))) return false;
    await tf.ready();
    // A backend can initialise and still fail its first kernel (e.g. a GPU without float textures).
    const probe = tf.tidy(() => tf.matMul(tf.ones([2, 2]), tf.ones([2, 2])));
    await probe.data();
    probe.dispose();
    return tf.getBackend() === name;
  } catch (e) {
    console.warn(`backend ${name} unavailable: ${(e as Error).message}`);
    return false;
  }
}

/** Switches to `wanted` ('auto': the first of webgpu, webgl, wasm that works); returns the backend in use. */
export async function selectBackend(wanted: PageBackend | 'auto'): Promise<PageBackend> {
  const order = wanted === 'auto' ? PAGE_BACKENDS.slice(0, 3) : [wanted];
  for (const name of order) if (await tryBackend(name)) return name;
  if (wanted !== 'auto') throw new Error(`backend ${wanted} failed to initialise`);
  await tryBackend('cpu');
  return 'cpu';
}
