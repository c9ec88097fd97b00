/**
 * npm run bundle:gpu [-- --out DIR] [--no-pack]
 *
 * Builds what bench/gpu.sh needs on a GPU machine that has PyTorch but no Node.js and takes at most 64 MiB
 * per call: one self-contained folder `sll-gpu/`, packed as `DIR/sll-gpu.tar.xz` (DIR: `.gpu-bundle`,
 * git-ignored; name it in the device call's `carry`). The folder holds
 *   node             a stripped copy of the Node.js running this script (it needs only glibc)
 *   bench-gpu.mjs    bench/gpu.ts and everything it imports (tfjs, tfjs-backend-webgpu, the library) in one file
 *   sll.mjs          the CLI (src/cli/main.ts) likewise, for `sll bench memory --backend webgpu`
 *   node_modules/webgpu/   Dawn: the package's index.js and its linux-x64 dawn.node only
 *   lib/libvulkan.so.1     the Vulkan loader Dawn opens (the GPU machines may lack Debian's libvulkan1)
 *   torch_ref.py     the PyTorch reference (bench/torch_ref.py)
 *   manifest.json    the commit, the date and the files' sizes
 * `--no-pack` leaves the folder unpacked in DIR (what the test of the bundle uses: packing takes a minute).
 * Run after `tsc -p .` (the npm script does): the bundles are made from the compiled tree this script is in.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { benchArgs } from './args.js';

/** The compiled tree this script is part of (dist/, or another tsc outDir), and the repository above it. */
const DIST = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ROOT = path.resolve(DIST, '..');
/** The compressed bundle must leave room for the working tree in a 64 MiB call. */
const MAX_PACKED_BYTES = 48 * 1024 * 1024;

/** The Vulkan loader as the system has it (Debian's libvulkan1), or a clear error. */
function vulkanLoader(): string {
  const candidates = ['/usr/lib/x86_64-linux-gnu/libvulkan.so.1', '/usr/lib64/libvulkan.so.1', '/usr/lib/libvulkan.so.1'];
  const found = candidates.find((f) => existsSync(f));
  if (!found) throw new Error(`bundle:gpu: the Vulkan loader is not installed here (looked in ${candidates.join(', ')}); apt-get install libvulkan1`);
  return realpathSync(found);
}

/** One ESM file of `entry` (a compiled file under DIST) with all its imports, Dawn's package left outside. */
async function bundle(entry: string, outfile: string): Promise<void> {
  await build({
    entryPoints: [path.join(DIST, entry)],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    minify: true,
    logLevel: 'error',
    // Dawn is a native module found next to the bundle; playwright-core (sll report's PNGs) is imported
    // only when used, never on a GPU run.
    external: ['webgpu', 'playwright-core'],
    // Bundled CommonJS (tfjs's dependencies) calls require() for Node built-ins; ESM has none of its own.
    banner: { js: "import { createRequire as __sllRequire } from 'node:module'; const require = __sllRequire(import.meta.url);" },
  });
}

export async function bundleGpu(outDir: string, pack: boolean, log: (s: string) => void = console.error): Promise<string> {
  if (process.platform !== 'linux' || process.arch !== 'x64') throw new Error(`bundle:gpu builds for linux-x64 GPU machines; this is ${process.platform}-${process.arch}`);
  for (const f of ['bench/gpu.js', 'src/cli/main.js']) {
    if (!existsSync(path.join(DIST, f))) throw new Error(`bundle:gpu: ${path.join(DIST, f)} is missing; run tsc -p . first (npm run bundle:gpu does)`);
  }
  const dir = path.join(outDir, 'sll-gpu');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(path.join(dir, 'lib'), { recursive: true });

  log('bundle:gpu: bundling bench/gpu and the CLI (esbuild)');
  await bundle('bench/gpu.js', path.join(dir, 'bench-gpu.mjs'));
  await bundle('src/cli/main.js', path.join(dir, 'sll.mjs'));

  const require = createRequire(import.meta.url);
  const webgpu = path.dirname(require.resolve('webgpu/package.json'));
  const dawnDir = path.join(dir, 'node_modules', 'webgpu', 'dist', 'linux-x64');
  mkdirSync(dawnDir, { recursive: true });
  for (const f of ['package.json', 'index.js', 'LICENSE.md']) copyFileSync(path.join(webgpu, f), path.join(dir, 'node_modules', 'webgpu', f));
  copyFileSync(path.join(webgpu, 'dist', 'linux-x64', 'dawn.node'), path.join(dawnDir, 'dawn.node'));
  copyFileSync(vulkanLoader(), path.join(dir, 'lib', 'libvulkan.so.1'));
  copyFileSync(path.join(ROOT, 'bench', 'torch_ref.py'), path.join(dir, 'torch_ref.py'));

  log(`bundle:gpu: copying ${process.execPath} (stripped)`);
  const node = path.join(dir, 'node');
  copyFileSync(process.execPath, node);
  chmodSync(node, 0o755);
  try {
    execFileSync('strip', ['--strip-unneeded', node]);
  } catch {
    log('bundle:gpu: strip is not installed (binutils): the node binary stays unstripped');
  }

  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    /* not a git checkout */
  }
  const files = ['node', 'bench-gpu.mjs', 'sll.mjs', 'node_modules/webgpu/dist/linux-x64/dawn.node', 'lib/libvulkan.so.1', 'torch_ref.py'];
  const manifest = { commit, built: new Date().toISOString(), node: process.version, files: Object.fromEntries(files.map((f) => [f, statSync(path.join(dir, f)).size])) };
  writeFileSync(path.join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  if (!pack) return dir;

  const tarball = path.join(outDir, 'sll-gpu.tar.xz');
  log(`bundle:gpu: packing ${tarball} (xz)`);
  execFileSync('tar', ['-cf', tarball, '--use-compress-program=xz -T0 -6', '-C', outDir, 'sll-gpu']);
  rmSync(dir, { recursive: true, force: true });
  const size = statSync(tarball).size;
  if (size > MAX_PACKED_BYTES) throw new Error(`bundle:gpu: ${tarball} is ${(size / 2 ** 20).toFixed(1)} MiB, over the ${MAX_PACKED_BYTES / 2 ** 20} MiB it may take`);
  log(`bundle:gpu: ${tarball}: ${(size / 2 ** 20).toFixed(1)} MiB (commit ${commit.slice(0, 7)}); carry '${path.relative(ROOT, outDir) || '.'}' and run bash bench/gpu.sh`);
  return tarball;
}

async function main(): Promise<void> {
  const { values } = benchArgs(() => parseArgs({ options: { out: { type: 'string', default: path.join(ROOT, '.gpu-bundle') }, 'no-pack': { type: 'boolean', default: false } } }));
  mkdirSync(values.out!, { recursive: true });
  await bundleGpu(path.resolve(values.out!), !values['no-pack']);
}

if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((e: unknown) => {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
