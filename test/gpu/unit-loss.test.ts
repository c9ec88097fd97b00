/**
 * The fused WebGPU unit loss (src/gpu/unit-loss.ts): loss, stats row and gradient against eq. (5) written
 * here in float64, and against the tfjs ops on the cpu backend. On SwiftShader without a GPU; skips only with
 * a printed reason, never under CI.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useBackend } from '../../src/backend.js';
import { webGpuUnitLossStats } from '../../src/gpu/unit-loss.js';
import { unitLossStats } from '../../src/objectives/unit-loss.js';
import { webGpuForTests } from './setup.js';
import { assertNear, runUnitLoss, UNIT_LOSS_CASES, unitLossInputs, unitLossReference } from '../objectives/unit-loss-reference.js';

const { skip, dispatches } = await webGpuForTests('the WebGPU unit-loss tests');

for (const [B, withParent, lambda] of UNIT_LOSS_CASES) {
  test(`fused unit loss, B=${B}, ${withParent ? 'with' : 'without'} parent, lambda ${lambda}: values, stats and gradient match float64 and the tfjs ops`, { skip }, async () => {
    const { v, parent, labels } = unitLossInputs(B, withParent);
    const want = unitLossReference(v, labels, parent, lambda);
    const run = (fn: typeof unitLossStats) => runUnitLoss(fn, v, labels, parent, lambda);

    await useBackend('webgpu');
    const before = dispatches();
    const gpu = await run(webGpuUnitLossStats);
    // The loss, its stats and its gradient: one dispatch; the backward pass scales it by dy: one more.
    assert.ok(dispatches() - before <= 2, `${dispatches() - before} dispatches`);
    assertNear(gpu.stats, want.stats, 'webgpu stats');
    assertNear(gpu.grad, want.grad.flat(), 'webgpu gradient');

    await useBackend('cpu');
    const cpu = await run(unitLossStats);
    assertNear(cpu.stats, want.stats, 'cpu stats');
    assertNear(cpu.grad, want.grad.flat(), 'cpu gradient');
    await useBackend('webgpu');
  });
}
