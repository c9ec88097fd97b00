import * as tf from '@tensorflow/tfjs';
import { applyUnit } from '../models/network.js';
import { shown } from './config.js';
import { requireHeaded, type HeadedNetwork } from './model.js';

/**
 * Class probabilities [n, K] for inputs x (in the network's input space, i.e. normalised as in training):
 * from unit `head`'s projection head (0-based; default the last unit's, the model's prediction), or from
 * a BP network's classifier.
 */
export function predict(model: HeadedNetwork, x: tf.Tensor, opts: { head?: number } = {}): tf.Tensor2D {
  requireHeaded(model, 'predict');
  const { network, heads } = model;
  const last = network.units.length - 1;
  const head = opts.head ?? last;
  if (!Number.isInteger(head) || head < 0 || head > last) throw new RangeError(`head must be an integer in 0..${last}, got ${shown(head)}`);
  if (network.classifier && head !== last) throw new RangeError('a BP network predicts through its classifier, after the last unit');
  return tf.tidy(() => {
    const h = network.units.slice(0, head + 1).reduce((a, unit) => applyUnit(unit, a, false), x);
    const logits = network.classifier ? (network.classifier.apply(h, { training: false }) as tf.Tensor2D) : heads[head].project(h);
    return tf.softmax(logits);
  });
}
