import { makeDataset, makeStreamingDataset, type ImageDataset, type InMemoryDataset } from './dataset.js';
import { permutation } from './random.js';

/**
 * A seeded subset of `limit` examples, stratified by class: classes keep their proportions (up to
 * rounding), which matters for small subsets. Selected examples keep their original relative order.
 * The subset of an in-memory set is in memory; that of a streaming set streams the chosen images.
 */
export function subset(ds: InMemoryDataset, limit: number, seed: number): InMemoryDataset;
export function subset(ds: ImageDataset, limit: number, seed: number): ImageDataset;
export function subset(ds: ImageDataset, limit: number, seed: number): ImageDataset {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`subset: limit must be a positive integer, got ${limit}`);
  if (!Number.isSafeInteger(seed)) throw new RangeError(`subset: seed must be an integer, got ${seed}`);
  if (limit >= ds.size) return ds;
  const counts = new Float64Array(ds.numClasses);
  for (const y of ds.labels) counts[y]++;
  // Within each class, walk a random order; the r-th pick of class k gets key (r + 0.5) / count_k.
  // Taking the smallest keys interleaves classes in proportion to their size (systematic sampling).
  const order = permutation(ds.size, seed);
  const seen = new Float64Array(ds.numClasses);
  const key = new Float64Array(ds.size);
  for (const i of order) {
    const y = ds.labels[i];
    key[i] = (seen[y]++ + 0.5) / counts[y];
  }
  const picked = Uint32Array.from(
    Array.from(order)
      .sort((a, b) => key[a] - key[b])
      .slice(0, limit)
      .sort((a, b) => a - b),
  );
  const labels = Int32Array.from(picked, (src) => ds.labels[src]);
  const name = `${ds.name}[${limit}]`;
  if (!ds.pixels) {
    const parent = ds;
    return makeStreamingDataset({
      ...ds,
      name,
      labels,
      readPixels(indices, out) {
        parent.readPixels(Uint32Array.from({ length: indices.length }, (_, k) => picked[indices[k]]), out);
      },
    });
  }
  const [h, w, c] = ds.shape;
  const stride = h * w * c;
  const pixels = new Uint8Array(limit * stride);
  picked.forEach((src, dst) => pixels.set(ds.pixels!.subarray(src * stride, (src + 1) * stride), dst * stride));
  return makeDataset({ ...ds, name, pixels, labels });
}
