/**
 * WebGPU in Node for tfjs-backend-webgpu: Dawn (the npm package `webgpu`, binary inside the package) made
 * `navigator.gpu`, with its classes (GPUBufferUsage, ...) on globalThis as a browser has them. Dawn reaches
 * the GPU through Vulkan: it needs the Vulkan loader (Debian `libvulkan1`) and a driver's ICD, which the
 * loader finds in its standard folders or where `VK_DRIVER_FILES` points. Without a GPU, the SwiftShader
 * driver that Debian's `chromium` ships gives an adapter on the CPU: far too slow to time, exact enough to
 * test kernels and to count what a step costs.
 */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { installGpuCounters, type GpuCounters, type WebGpuClasses } from './counters.js';

/** SwiftShader's Vulkan ICD as Debian's `chromium` package installs it. */
export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/** The GPU adapter Dawn found, as `GPUAdapterInfo` describes it (empty strings where the driver says nothing). */
export interface GpuAdapterDescription {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
}

/** WebGPU could not be set up: the message names what is missing. */
export class WebGpuUnavailableError extends Error {
  override name = 'WebGpuUnavailableError';
}

interface DawnModule {
  create(options: string[]): GPU;
  globals: object;
}

let dawn: { gpu: GPU; globals: WebGpuClasses; adapter: GpuAdapterDescription } | null = null;

/** One line for people: "NVIDIA H200 (nvidia hopper, Vulkan driver ...)". */
export function describeAdapter(a: GpuAdapterDescription): string {
  const name = a.device || a.description || 'unnamed adapter';
  const rest = [[a.vendor, a.architecture].filter(Boolean).join(' '), a.description !== name ? a.description : ''].filter(Boolean);
  return rest.length > 0 ? `${name} (${rest.join(', ')})` : name;
}

/** Where the Vulkan loader is, or null when it is in none of the usual library folders (Linux only). */
function vulkanLoader(): string | null | undefined {
  if (process.platform !== 'linux') return undefined;
  const dirs = [...(process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean), `/usr/lib/${process.arch === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu`, '/usr/lib64', '/usr/lib', '/lib64', '/lib'];
  return dirs.map((d) => path.join(d, 'libvulkan.so.1')).find((f) => existsSync(f)) ?? null;
}

function noAdapterMessage(): string {
  const loader = vulkanLoader();
  const drivers = process.env.VK_DRIVER_FILES ?? process.env.VK_ICD_FILENAMES;
  const lines = [
    'WebGPU found no GPU adapter. Dawn (npm `webgpu`) reaches the GPU through Vulkan:',
    loader === null
      ? '- the Vulkan loader libvulkan.so.1 is not installed (Debian/Ubuntu: apt-get install libvulkan1);'
      : `- the Vulkan loader${loader ? ` (${loader})` : ''} needs a driver Dawn accepts: ${drivers ? `VK_DRIVER_FILES=${drivers} gave none` : "there is none in the loader's standard folders (/usr/share/vulkan/icd.d, /etc/vulkan/icd.d)"};`,
    '- for an NVIDIA GPU, point VK_DRIVER_FILES at its ICD json (e.g. /usr/share/vulkan/icd.d/nvidia_icd.json or',
    '  /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json);',
    `- without a GPU (tests only: very slow), SwiftShader from Debian's chromium package: VK_DRIVER_FILES=${SWIFTSHADER_ICD}` +
      (existsSync(SWIFTSHADER_ICD) ? ' (present here).' : ' (not installed here: apt-get install chromium).'),
  ];
  return lines.join('\n');
}

/**
 * Makes Dawn `navigator.gpu` (once per process) and returns its adapter. Throws WebGpuUnavailableError,
 * naming what is missing, when the package does not load or no adapter is found. `swiftShader`: when no
 * adapter is found and no driver was named (`VK_DRIVER_FILES`, `VK_ICD_FILENAMES` unset), try again on
 * SwiftShader if Debian's chromium provides it (for tests and counting, never for training: a named driver
 * always wins). `counters` wraps the WebGPU methods with {@link installGpuCounters} before anything uses them.
 */
export async function installWebGpu(
  opts: { swiftShader?: boolean; counters?: boolean } = {},
): Promise<{ adapter: GpuAdapterDescription; counters: GpuCounters | null }> {
  if (!dawn) {
    let mod: DawnModule;
    try {
      mod = (await import('webgpu')) as unknown as DawnModule;
    } catch (e) {
      throw new WebGpuUnavailableError(`the npm package 'webgpu' (Dawn) did not load: ${(e as Error).message}`);
    }
    // XDG_RUNTIME_DIR unset makes the Vulkan loader warn on every start.
    process.env.XDG_RUNTIME_DIR ??= '/tmp';
    let gpu = mod.create([]);
    let found = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    const named = process.env.VK_DRIVER_FILES || process.env.VK_ICD_FILENAMES;
    if (!found && opts.swiftShader && !named && existsSync(SWIFTSHADER_ICD)) {
      // The loader reads VK_DRIVER_FILES when Dawn makes its next Vulkan instance.
      process.env.VK_DRIVER_FILES = SWIFTSHADER_ICD;
      gpu = mod.create([]);
      found = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    }
    if (!found) throw new WebGpuUnavailableError(noAdapterMessage());
    const info = found.info;
    const adapter = { vendor: info.vendor ?? '', architecture: info.architecture ?? '', device: info.device ?? '', description: info.description ?? '' };
    for (const [key, value] of Object.entries(mod.globals)) {
      if (!(key in globalThis)) Object.defineProperty(globalThis, key, { value, configurable: true, writable: true });
    }
    // Node 20 has no navigator; Node 21+ has one without `gpu`.
    const nav = (globalThis as { navigator?: object }).navigator;
    if (nav) Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true });
    else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
    dawn = { gpu, globals: mod.globals as WebGpuClasses, adapter };
  }
  return { adapter: dawn.adapter, counters: opts.counters ? installGpuCounters(dawn.globals) : null };
}

/** The adapter installWebGpu found, or null before it ran. */
export function webGpuAdapter(): GpuAdapterDescription | null {
  return dawn?.adapter ?? null;
}
