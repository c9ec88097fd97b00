#!/usr/bin/env node
// Builds native/build/Release/sll_native.node with node-gyp: `node native/build.mjs` (any cwd).
//
// node-gyp is taken from the project's node_modules when installed there, else from the copy bundled
// with npm (`npx node-gyp` would try to download one). npm's `nodedir` setting (this machine builds
// against Node's own headers in /usr/include/node) is passed on, since node-gyp run outside npm does not
// read npm's config. Needs: a C++17 compiler, make, python3, and OpenBLAS (Debian: libopenblas-dev).
import { spawnSync, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

function findNodeGyp() {
  try {
    return createRequire(path.join(here, '..', 'package.json')).resolve('node-gyp/bin/node-gyp.js');
  } catch {
    // not installed in the project
  }
  const candidates = [];
  try {
    const globalRoot = execFileSync('npm', ['root', '-g'], { encoding: 'utf8' }).trim();
    candidates.push(path.join(globalRoot, 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  } catch {
    // npm not on PATH
  }
  const prefix = path.dirname(path.dirname(process.execPath));
  candidates.push(path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  return candidates.find((c) => existsSync(c)) ?? null;
}

function npmConfig(key) {
  if (process.env[`npm_config_${key}`]) return process.env[`npm_config_${key}`];
  try {
    const v = execFileSync('npm', ['config', 'get', key], { encoding: 'utf8' }).trim();
    return v && v !== 'undefined' && v !== 'null' ? v : null;
  } catch {
    return null;
  }
}

const gyp = findNodeGyp();
if (gyp == null) {
  console.error('node-gyp not found: install it (npm install --save-dev node-gyp) or use an npm that bundles it');
  process.exit(1);
}
const args = [gyp, 'rebuild'];
const nodedir = npmConfig('nodedir');
if (nodedir) args.push(`--nodedir=${nodedir}`);
args.push(...process.argv.slice(2));
console.log(`> ${process.execPath} ${args.join(' ')}`);
const r = spawnSync(process.execPath, args, { cwd: here, stdio: 'inherit' });
process.exit(r.status ?? 1);
