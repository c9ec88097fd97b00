import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULTS, OptionError, recordedOptions, resolveOptions, type RunOptions } from '../../src/recipe/options.js';
import { loadRunData } from '../../src/recipe/run.js';

test('defaults resolve unchanged', () => {
  assert.deepEqual(resolveOptions({}), { ...DEFAULTS });
});

const bad: [Partial<RunOptions>, RegExp][] = [
  [{ lambda: -1 }, /--lambda must be >= 0, got -1/],
  [{ lambda: [1, 2] }, /--lambda needs one value or one per unit \(3\), got 2/],
  [{ keep: 0 }, /--keep must be in \(0, 1\], got 0/],
  [{ keep: 1.5 }, /--keep must be in \(0, 1\]/],
  [{ width: 0 }, /--width must be an integer >= 1, got 0/],
  [{ layers: 2.5 }, /--layers must be an integer >= 1/],
  [{ epochs: 0 }, /--epochs must be an integer >= 1/],
  [{ batchSize: -4 }, /--batch-size must be an integer >= 1/],
  [{ lr: 0 }, /--lr must be > 0/],
  [{ lr: NaN }, /--lr must be a number/],
  [{ lr: [1e-3, 1e-3] }, /--lr needs one value or one per unit \(3\), got 2/],
  [{ lr: [1e-3, -1, 1e-3] }, /--lr must be > 0, got -1/],
  [{ method: 'bp', lr: [1e-3, 1e-3, 1e-3] }, /--lr takes one value with --method bp \(one optimizer\), got 3/],
  [{ momentum: 1 }, /--momentum must be in \[0, 1\)/],
  [{ dataset: 'cifar' as RunOptions['dataset'] }, /--dataset must be one of mnist, fashion-mnist, cifar10, cifar100, imagefolder, got cifar/],
  [{ method: 'ff' as RunOptions['method'] }, /--method must be one of sll, bp/],
  [{ model: 'resnet' as RunOptions['model'] }, /--model must be one of mlp, vgg11, convstack, vit, got resnet/],
  [{ model: 'vit', width: 30, heads: 4 }, /--heads must divide --width \(30\), got 4/],
  [{ dropout: 1 }, /--dropout must be in \[0, 1\), got 1/],
  [{ elasticAlpha: -1 }, /--elastic-alpha must be a number >= 0, got -1/],
  [{ elasticSigma: 0 }, /--elastic-sigma must be a number > 0, got 0/],
  [{ token: 'first' as RunOptions['token'] }, /--token must be one of cls, mean, got first/],
  [{ widthMult: 0 }, /--width-mult must be in \(0, 4\], got 0/],
  [{ model: 'vgg11', lambda: [1, 1, 1] }, /--lambda needs one value or one per unit \(8\), got 3/],
  [{ model: 'vgg11', pipeline: 9 }, /--pipeline must be <= the number of units \(8\)/],
  [{ projDim: 2048 }, /--proj-dim must be <= --width \(1024\), got 2048/],
  [{ trainLimit: 0 }, /--train-limit must be an integer >= 1/],
  [{ run: 'r1' }, /--run applies only with --broker/],
  [{ pipeline: 2, remoteStages: true }, /--remote-stages applies only with --broker/],
  [{ backend: 'tpu' as RunOptions['backend'] }, /--backend must be one of auto, native, wasm, cpu/],
  // Options of another model are refused, not recorded and ignored.
  [{ batchNorm: true }, /--batch-norm applies to --model vgg11 and convstack, got --model mlp/],
  [{ model: 'convstack', widthMult: 0.5 }, /--width-mult applies to --model vgg11 \(use --width\), got --model convstack/],
  [{ heads: 2 }, /--heads applies to --model vit, got --model mlp/],
  [{ model: 'vgg11', patchSize: 7 }, /--patch-size applies to --model vit, got --model vgg11/],
  [{ model: 'vit', width: 32, heads: 4, mlpRatio: 0.01 }, /--mlp-ratio gives an MLP of 0 units at --width 32: it must give at least 1/],
  [{ model: 'vit', width: 32, heads: 4, projDim: 100 }, /--proj-dim must be <= --width \(32\), got 100/],
  // A misspelt key would otherwise leave its option at the default, unnoticed (runTraining from JavaScript, JSON).
  [{ epoch: 3 } as Partial<RunOptions>, /^epoch is not an option here \(did you mean epochs\?\)$/],
  [{ 'batch-size': 3 } as Partial<RunOptions>, /did you mean batchSize\?/],
  [{ lamda: 2 } as Partial<RunOptions>, /did you mean lambda\?/],
  [{ zzzz: 1 } as Partial<RunOptions>, /zzzz is not an option here \(known: model, layers, /],
];

for (const [partial, message] of bad) {
  test(`rejects ${JSON.stringify(partial)} with an actionable message`, () => {
    assert.throws(() => resolveOptions(partial), (e: Error) => e instanceof OptionError && message.test(e.message));
  });
}

test('recorded options keep the run options and leave out keys an older version wrote', () => {
  const recorded = { ...DEFAULTS, epochs: 3, removedOption: 'x' } as Record<string, unknown>;
  assert.deepEqual(recordedOptions(recorded), { ...DEFAULTS, epochs: 3 });
  assert.equal(resolveOptions(recordedOptions(recorded)).epochs, 3);
  assert.throws(() => resolveOptions(recorded as Partial<RunOptions>), /removedOption is not an option here/);
});

test('a run\'s limit above its split\'s size is told, and the whole split used', () => {
  const warnings: string[] = [];
  const data = loadRunData(resolveOptions({ trainLimit: 70000, testLimit: 100 }), (m) => warnings.push(m));
  assert.deepEqual(warnings, ['--train-limit 70000 is more than the 60000 examples of mnist/train: all of them are used']);
  assert.equal(data.train.size, 60000);
  assert.equal(data.test.size, 100);
});
