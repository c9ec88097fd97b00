import * as tf from '@tensorflow/tfjs';

/**
 * sg(x): the value of x, with no gradient flowing back through it. tfjs has no such op; SLL needs it at
 * every unit boundary (h_{i-1}^sg) and on the parent posterior of the alignment loss.
 */
const identityWithoutGradient = (x: tf.Tensor) => ({
  value: x.clone(),
  gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy),
});

/** sg(x): x in the forward pass, no gradient in the backward pass. */
export const stopGradient = tf.customGrad(
  identityWithoutGradient as unknown as Parameters<typeof tf.customGrad>[0],
) as <T extends tf.Tensor>(x: T) => T;
