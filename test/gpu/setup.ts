/**
 * The WebGPU adapter for a test file: SwiftShader when no GPU driver is named (Debian's chromium), with the
 * API counters on. Without one the file's tests skip with the printed reason, except under CI=true, where a
 * missing adapter fails them.
 */
import { useBackend } from '../../src/backend.js';
import { installWebGpu } from '../../src/gpu/webgpu-node.js';

export async function webGpuForTests(what: string): Promise<{ skip: string | false; dispatches: () => number }> {
  try {
    const { counters } = await installWebGpu({ swiftShader: true, counters: true });
    await useBackend('webgpu');
    return { skip: false, dispatches: () => counters!.read().dispatches };
  } catch (e) {
    const reason = `no WebGPU adapter: ${(e as Error).message}`;
    if (process.env.CI === 'true') throw new Error(`CI must run ${what}; ${reason}`);
    console.log(`# skipping ${what}: ${reason}`);
    return { skip: reason, dispatches: () => 0 };
  }
}
