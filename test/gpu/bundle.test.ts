/**
 * The GPU machine's run, rehearsed here: `bundle:gpu` builds the self-contained bundle (our own Node binary,
 * the bundled bench and CLI, Dawn, the Vulkan loader) and bench/gpu.sh runs it in its quick mode on
 * SwiftShader, from a folder with no node_modules above it and a bare environment, as on a machine with no
 * Node.js. Skips only with a printed reason (no SwiftShader, not linux-x64), and never under CI=true.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { bundleGpu } from '../../bench/bundle-gpu.js';
import { MATMUL_TILINGS } from '../../src/gpu/matmul.js';
import { SWIFTSHADER_ICD } from '../../src/gpu/webgpu-node.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const reason =
  process.platform !== 'linux' || process.arch !== 'x64'
    ? `the bundle is built for linux-x64, this is ${process.platform}-${process.arch}`
    : !fs.existsSync(SWIFTSHADER_ICD)
      ? `no SwiftShader (${SWIFTSHADER_ICD}: apt-get install chromium)`
      : null;
if (reason && process.env.CI === 'true') throw new Error(`CI must run the GPU bundle's rehearsal; ${reason}`);
if (reason) console.log(`# skipping the GPU bundle's rehearsal: ${reason}`);

/** Whether this Python has torch (CI's machine does not; the GPU machine does). */
function hasTorch(python: string): boolean {
  return spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
}

test('bench/gpu.sh runs the bundle alone: counts, memory rows, products, gpu.json', { skip: reason ?? false, timeout: 600_000 }, async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sll-gpu-bundle-'));
  try {
    const folder = await bundleGpu(tmp, false, () => {});
    const manifest = JSON.parse(fs.readFileSync(path.join(folder, 'manifest.json'), 'utf8')) as { files: Record<string, number> };
    for (const f of ['node', 'bench-gpu.mjs', 'sll.mjs', 'node_modules/webgpu/dist/linux-x64/dawn.node', 'lib/libvulkan.so.1', 'torch_ref.py']) {
      assert.ok(manifest.files[f] > 0, `${f} in the bundle`);
    }
    const python = ['/usr/bin/python3', 'python3'].find((p) => spawnSync(p, ['-c', '1']).status === 0) ?? 'python3';
    const out = path.join(tmp, 'out');
    // A bare environment: no NODE_PATH, no node on PATH that the script could fall back to unnoticed.
    const env = { PATH: '/usr/bin:/bin', HOME: tmp, OUT: out, SLL_GPU_QUICK: '1', SLL_GPU_BUNDLE: folder, PYTHON: python };
    const run = spawnSync('bash', [path.join(root, 'bench', 'gpu.sh')], { cwd: tmp, env, encoding: 'utf8', timeout: 540_000 });
    const log = `${run.stdout}${run.stderr}`;
    const summary = JSON.parse(fs.readFileSync(path.join(out, 'gpu.json'), 'utf8')) as {
      adapter: string;
      failed: string[];
      steps: { case: string; engine: string; batch: number; dispatches_per_step: number; uploads_per_step: number; readbacks_per_step: number; torch_ms_per_step: number | null }[];
      memory: { engine: string; method: string; depth: number; activation_peak_bytes: number; gpu_pool_bytes?: number }[];
      matmuls: { product: string; engine: string; tiling?: string | null; batch: number; m: number; n: number; k: number; ms: number; gflops: number }[];
    };
    // Without torch, only the PyTorch parts may fail; everything of ours must have run.
    const torch = hasTorch(python);
    if (!torch) console.log(`# ${python} has no torch: the PyTorch rows of the rehearsal are skipped`);
    assert.deepEqual(summary.failed.filter((f) => !f.startsWith('torch')), [], log);
    assert.equal(run.status, torch ? 0 : 1, log);
    assert.match(summary.adapter, /swiftshader/i);
    assert.deepEqual(summary.steps.map((s) => `${s.case}/${s.engine}@${s.batch}`), [
      'mlp-sll/tfjs-stock@16',
      'mlp-sll/sll-tfjs-matmul@16',
      'mlp-sll/sll@16',
      'mlp-bp/tfjs-stock@16',
      'mlp-bp/sll-tfjs-matmul@16',
      'mlp-bp/sll@16',
    ]);
    for (const s of summary.steps) {
      assert.ok(s.dispatches_per_step > 10 && s.readbacks_per_step >= 1, JSON.stringify(s));
      if (torch) assert.ok(s.torch_ms_per_step! > 0, JSON.stringify(s));
    }
    // The library's own step (fused Adam) takes fewer dispatches than stock tfjs's.
    for (const c of ['mlp-sll', 'mlp-bp']) {
      const [stock, ours] = ['tfjs-stock', 'sll'].map((e) => summary.steps.find((s) => s.case === c && s.engine === e)!);
      assert.ok(ours.dispatches_per_step < stock.dispatches_per_step, `${c}: ${ours.dispatches_per_step} vs ${stock.dispatches_per_step}`);
    }
    // The step's products on their own: ours in each tiling and tfjs's, PyTorch's when it runs, at the step's shapes.
    const engines = [...MATMUL_TILINGS.map((t) => `sll ${t}`), 'tfjs', ...(torch ? ['torch'] : [])];
    assert.deepEqual(
      summary.matmuls.map((r) => `${r.product}/${r.engine}${r.tiling ? ` ${r.tiling}` : ''}@${r.batch}`).sort(),
      ['forward-in', 'forward', 'weights-in', 'weights', 'head'].flatMap((p) => engines.map((e) => `${p}/${e}@16`)).sort(),
    );
    for (const r of summary.matmuls) {
      const shape = { 'forward-in': [16, 64, 784], forward: [16, 64, 64], 'weights-in': [784, 64, 16], weights: [64, 64, 16], head: [16, 10, 64] }[r.product];
      assert.deepEqual([r.m, r.n, r.k], shape, JSON.stringify(r));
      assert.ok(r.ms > 0 && r.gflops >= 0, JSON.stringify(r));
    }
    assert.match(log, /product\s+batch\s+m x n x k\s+64x64\/4x4\s+128x64\/8x4\s+128x128\/8x8\s+tfjs/);
    const ours = summary.memory.filter((m) => m.engine === 'sll-webgpu');
    assert.deepEqual(ours.map((m) => `${m.method}@${m.depth}`), ['sll@2', 'sll@4', 'bp@2', 'bp@4']);
    for (const m of ours) assert.ok(m.activation_peak_bytes > 0 && m.gpu_pool_bytes! >= m.activation_peak_bytes, JSON.stringify(m));
    // SLL's activation peak does not grow with depth; BP's does.
    assert.equal(ours[0].activation_peak_bytes, ours[1].activation_peak_bytes);
    assert.ok(ours[3].activation_peak_bytes > ours[2].activation_peak_bytes);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
