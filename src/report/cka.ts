/**
 * Linear centred kernel alignment (Kornblith et al. 2019), the similarity of two representations of the
 * same n examples that the paper's Figure 3a reports between each layer and the input:
 *
 *   CKA(X, Y) = <K_c, L_c>_F / (||K_c||_F ||L_c||_F),  K = X X^T, L = Y Y^T,  K_c = H K H,  H = I - 11^T/n
 *
 * with X [n, p] and Y [n, q] (rows are examples; any trailing dimensions are flattened into features).
 * It is 1 for identical representations, and invariant to orthogonal transforms and isotropic scaling of
 * either. Computed through the n x n Gram matrices (cheap for n ~ 1000 examples whatever the width),
 * on the tfjs backend in float32.
 */
import * as tf from '@tensorflow/tfjs';

/** The centred Gram matrix H X X^T H of `x` ([n, ...], flattened to [n, p]). */
export function centredGram(x: tf.Tensor): tf.Tensor2D {
  return tf.tidy(() => {
    const n = x.shape[0];
    const flat = x.reshape([n, -1]);
    // Centring the columns of X is the same as H K H.
    const centred = flat.sub(flat.mean(0, true));
    return tf.matMul(centred, centred, false, true) as tf.Tensor2D;
  });
}

/** Linear CKA of the centred Gram matrices `k` and `l` (from {@link centredGram}); 0 when either is 0. */
export function ckaOfGrams(k: tf.Tensor2D, l: tf.Tensor2D): number {
  const [hsic, kk, ll] = tf.tidy(() => [k.mul(l).sum(), k.square().sum(), l.square().sum()]).map((t) => {
    const v = t.dataSync()[0];
    t.dispose();
    return v;
  });
  const norm = Math.sqrt(kk) * Math.sqrt(ll);
  return norm > 0 ? hsic / norm : 0;
}

/** Linear CKA of `x` [n, ...] and `y` [n, ...] (the same n examples). */
export function linearCka(x: tf.Tensor, y: tf.Tensor): number {
  if (x.shape[0] !== y.shape[0]) throw new Error(`CKA compares the same examples: got ${x.shape[0]} and ${y.shape[0]} rows`);
  const k = centredGram(x);
  const l = centredGram(y);
  try {
    return ckaOfGrams(k, l);
  } finally {
    tf.dispose([k, l]);
  }
}

/** The symmetric matrix of linear CKA between every pair of `representations` (each [n, ...], same n). */
export function ckaMatrix(representations: readonly tf.Tensor[]): number[][] {
  const grams = representations.map(centredGram);
  try {
    const m = grams.map(() => new Array<number>(grams.length).fill(0));
    for (let i = 0; i < grams.length; i++) {
      for (let j = i; j < grams.length; j++) m[i][j] = m[j][i] = i === j ? 1 : ckaOfGrams(grams[i], grams[j]);
    }
    return m;
  } finally {
    tf.dispose(grams);
  }
}
