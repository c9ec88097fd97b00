import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { COMMANDS } from '../../src/cli/commands.js';
import { flagName } from '../../src/recipe/options.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

function sll(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('sll --version prints the package version and exits 0', () => {
  const { version } = JSON.parse(fs.readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'));
  const r = sll('--version');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), version);
});

test('sll --help (and sll alone) lists every command and exits 0', () => {
  for (const args of [['--help'], []]) {
    const r = sll(...args);
    assert.equal(r.code, 0, r.stderr);
    for (const c of COMMANDS) assert.match(r.stdout, new RegExp(`sll ${c.name} `), c.name);
    assert.match(r.stdout, /sll --version/);
  }
});

for (const command of COMMANDS) {
  test(`sll ${command.name} --help exits 0 and describes every flag (with its values and default)`, () => {
    const r = sll(...command.name.split(' '), '--help');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^usage: sll ${command.name} `));
    const lines = r.stdout.split('\n');
    for (const [key, spec] of Object.entries(command.flags)) {
      const flag = flagName(key);
      const i = lines.findIndex((l) => l.trimStart().startsWith(`${flag} `) || l.trim() === flag);
      assert.ok(i >= 0, `${flag} is listed`);
      // The description is on the flag's line, or on the next one when the flag fills its column.
      const text = /^ {2}\S.*?\s{2,}(\S.*)$/.exec(lines[i])?.[1] ?? lines[i + 1].trim();
      assert.ok(text.length >= 10, `${flag} has a description: '${text}'`);
      if (spec.values) assert.ok(lines[i].includes(spec.values.join('|')), `${flag} shows its values`);
      if (spec.default !== undefined && spec.default !== null) {
        const block = lines.slice(i, i + 4).join(' ').replace(/\s+/g, ' ');
        assert.ok(block.includes(`default ${Array.isArray(spec.default) ? spec.default.join(',') : String(spec.default)}`), `${flag} shows its default`);
      }
    }
  });
}

test('-h works like --help, after other flags too', () => {
  const r = sll('train', '--epochs', '3', '-h');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /--keep X +keep probability of the Bernoulli mask/);
});

test('every bench script prints its header with --help, and a bad flag or value in one line with exit 2', () => {
  const dir = fileURLToPath(new URL('../../bench/', import.meta.url));
  const scripts = fs.readdirSync(dir).filter((f) => f.endsWith('.js') && f !== 'args.js');
  assert.ok(scripts.length >= 7, `bench scripts: ${scripts.join(', ')}`);
  for (const f of scripts) {
    const script = `${dir}${f}`;
    const help = spawnSync(process.execPath, [script, '--help'], { encoding: 'utf8' });
    assert.equal(help.status, 0, `${f}: ${help.stderr}`);
    const header = /^\/\*\*([\s\S]*?)\*\//.exec(fs.readFileSync(script, 'utf8'))![1].split('\n')[1].replace(/^ \* /, '');
    assert.equal(help.stdout.split('\n')[0], header, f);
    const bad = spawnSync(process.execPath, [script, '--no-such-flag'], { encoding: 'utf8' });
    assert.equal(bad.status, 2, `${f}: ${bad.stderr}`);
    assert.match(bad.stderr, /^(bench|bundle):[\w-]+: Unknown option '--no-such-flag' \(--help for the usage\)\n$/, f);
  }
  const value = spawnSync(process.execPath, [`${dir}data.js`, '--repeats', 'two'], { encoding: 'utf8' });
  assert.equal(value.status, 2);
  assert.equal(value.stderr, 'bench:data: --repeats must be an integer >= 1, got two (--help for the usage)\n');
});
