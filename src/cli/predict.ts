/**
 * `sll predict --model-dir DIR FILE...`: the class and its probability for images (PNG, JPEG) or the
 * records of IDX image files, from the saved predictor (model.json, as any tfjs app would load it).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { DataError } from '../data/errors.js';
import { parseIdx } from '../data/idx.js';
import { decodeImage, resizeImage } from '../data/image.js';
import type { SllJson } from '../io/artifacts.js';
import { readLayersModel } from '../io/model-files.js';
import { BACKENDS, useBackend, type BackendName } from '../backend.js';
import type { Command } from './args.js';

/** An input of the predictor: raw 0..255 pixels [H, W, C] and where they came from (an IDX file's record `index`). */
interface Input {
  file: string;
  index?: number;
  pixels: Uint8Array;
}

export const predictCommand: Command = {
  name: 'predict',
  brief: 'classes of PNG/JPEG images or IDX records from a saved model',
  summary:
    'Prints the predicted class and its probability for each image (PNG or JPEG, converted to the model\'s channels and ' +
    'resized to its input size) or each record of an IDX image file, using DIR/model.json: the saved tfjs model, ' +
    'which takes raw 0..255 pixels and outputs class probabilities.',
  usage: '--model-dir DIR [--json] [--limit N] FILE...',
  positionals: true,
  flags: {
    modelDir: { kind: 'path', required: true, description: 'a folder written by sll train (model.json, weights.bin, sll.json)' },
    json: { kind: 'boolean', description: 'one JSON line per input: file, index (IDX records), class, label (the class\'s name, for image-folder runs), probability, probabilities' },
    limit: { kind: 'int', description: 'at most this many records per IDX file (default: all)' },
    backend: { kind: 'string', values: BACKENDS, default: 'auto', description: 'tfjs backend' },
  },
  async run(values, files) {
    if (files.length === 0) throw new DataError('sll predict needs one or more image or IDX files after its flags');
    const dir = values.modelDir as string;
    const limit = values.limit as number | undefined;
    const sllFile = path.join(dir, 'sll.json');
    const sll = fs.existsSync(sllFile) ? readSllJson(sllFile) : null;
    await useBackend((values.backend as BackendName | undefined) ?? 'auto');
    const model = await tf.loadLayersModel(tf.io.fromMemory(readLayersModel(dir)));
    const shape = model.inputs[0].shape.slice(1) as number[];
    if (shape.length !== 3) throw new DataError(`${dir}/model.json takes inputs of shape [${shape}], not images [H, W, C]`);
    // The class names of an image folder's run (its subfolders), when the model records them.
    const classNames = sll?.normalization?.classNames;
    if (sll && !sll.normalization) console.error(`sll: ${dir} records no input normalisation: the model gets raw 0..255 pixels as they are`);
    const inputs = files.flatMap((f) => readInputs(f, shape, limit));
    const batch = 256;
    for (let start = 0; start < inputs.length; start += batch) {
      const part = inputs.slice(start, start + batch);
      const x = new Float32Array(part.length * part[0].pixels.length);
      part.forEach((p, i) => x.set(p.pixels, i * p.pixels.length));
      const probs = tf.tidy(() => model.predict(tf.tensor(x, [part.length, ...shape])) as tf.Tensor2D);
      const rows = (await probs.array()) as number[][];
      probs.dispose();
      rows.forEach((p, i) => {
        const k = p.indexOf(Math.max(...p));
        const { file, index } = part[i];
        const name = index === undefined ? file : `${file}#${index}`;
        const label = classNames?.[k];
        if (values.json) console.log(JSON.stringify({ file, ...(index !== undefined && { index }), class: k, ...(label !== undefined && { label }), probability: p[k], probabilities: p }));
        else console.log(`${name}: class ${k}${label !== undefined ? ` "${label}"` : ''} (p ${p[k].toFixed(4)})`);
      });
    }
    model.dispose();
    return 0;
  },
};

function readSllJson(file: string): SllJson {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as SllJson;
  } catch (e) {
    throw new DataError(`${file} is not valid JSON (${(e as Error).message})`);
  }
}

/** The images in `file` at the model's [H, W, C]: one for a PNG/JPEG, one per record for an IDX file. */
function readInputs(file: string, [h, w, c]: number[], limit: number | undefined): Input[] {
  if (!fs.existsSync(file)) throw new DataError(`${file} not found`);
  if (!fs.statSync(file).isFile()) throw new DataError(`${file} is not a file (an image, PNG or JPEG, or an IDX image file)`);
  const bytes = new Uint8Array(fs.readFileSync(file));
  if (bytes.length >= 3 && bytes[0] === 0 && bytes[1] === 0 && bytes[2] === 0x08) {
    const idx = parseIdx(bytes, file);
    if (idx.dims.length !== 3 && idx.dims.length !== 4) throw new DataError(`${file}: an IDX image file has 3 or 4 dimensions (N, H, W[, C]), got ${idx.dims.length}`);
    const [n, ih, iw, ic = 1] = idx.dims;
    const stride = ih * iw * ic;
    const count = Math.min(n, limit ?? n);
    return Array.from({ length: count }, (_, i) => ({
      file,
      index: i,
      pixels: fit({ width: iw, height: ih, channels: ic, data: idx.data.subarray(i * stride, (i + 1) * stride) }, h, w, c),
    }));
  }
  return [{ file, pixels: fit(decodeImage(bytes, file), h, w, c) }];
}

/** An image as the model's input: its channels converted (gray <-> RGB), then resized to h x w. */
function fit(img: { width: number; height: number; channels: number; data: Uint8Array }, h: number, w: number, c: number): Uint8Array {
  let data = img.data;
  if (img.channels !== c) {
    const n = img.width * img.height;
    const out = new Uint8Array(n * c);
    for (let p = 0; p < n; p++) {
      if (c === 1) {
        const [r, g, b] = [0, 1, 2].map((k) => img.data[p * img.channels + Math.min(k, img.channels - 1)]);
        out[p] = Math.round(0.299 * r + 0.587 * g + 0.114 * b);
      } else {
        for (let k = 0; k < c; k++) out[p * c + k] = img.data[p * img.channels + Math.min(k, img.channels - 1)];
      }
    }
    data = out;
  }
  return resizeImage({ width: img.width, height: img.height, channels: c, data }, w, h);
}
