/** README's TypeScript example, run as written: it trains a user's tf.sequential with SLL and predicts through tf.loadLayersModel. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The first ```ts block after the heading "## Use it from TypeScript". */
function readmeExample(): string {
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Use it from TypeScript'));
  const match = /```ts\n([\s\S]*?)```/.exec(section);
  assert.ok(match, 'README has the example');
  return match[1];
}

test('the README example is at most 15 lines of TypeScript that type-check against the package\'s own types', () => {
  const source = readmeExample();
  const lines = source.split('\n').filter((l) => l.trim() !== '');
  assert.ok(lines.length <= 15, `${lines.length} lines`);
  const file = path.join(root, 'dist', 'test', 'readme-example.ts');
  fs.writeFileSync(file, source);
  const program = ts.createProgram([file], {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
  });
  const errors = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  assert.deepEqual(errors, []);
});

test('the README example runs as written: SLL from tf.data, saved, reloaded with tf.loadLayersModel, > 90% on MNIST test images', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'sll-readme-'));
  const source = readmeExample();
  assert.match(source, /from 'sll\/node'/, 'it imports the package by name');
  const js = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
  // Inside the package, so that 'sll/node' resolves to it (a package may import itself by name).
  const script = path.join(root, 'dist', 'test', 'readme-example.mjs');
  fs.writeFileSync(script, js);
  const r = spawnSync(process.execPath, [script], { cwd: work, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const accuracy = Number(/test accuracy (\S+)/.exec(r.stdout)?.[1]);
  assert.ok(accuracy > 0.9, `${r.stdout}`);
  for (const f of ['model.json', 'weights.bin', 'sll.json', 'heads.bin']) assert.ok(fs.existsSync(path.join(work, 'runs', 'my-mlp', f)), f);
});
