/**
 * tfjs's callback shape, so that what works with `model.fit` works with `fitSll`: `tf.callbacks.earlyStopping`,
 * tfjs-vis's `fitCallbacks`, or plain objects with `onEpochEnd(epoch, logs)`, `onBatchEnd(batch, logs)`, ...
 */
import * as tf from '@tensorflow/tfjs';
import { ConfigError, shown } from './config.js';

/** A tfjs callback: an instance (tf.Callback, e.g. tf.callbacks.earlyStopping) or plain callback methods. */
export type TfCallback = tf.CustomCallbackArgs | tf.CustomCallback | tf.Callback;

/** One callback or several. */
export type TfCallbacks = TfCallback | readonly TfCallback[];

/** The parameters tfjs hands every callback through setParams. */
export interface CallbackParams {
  epochs: number;
  /** Batches per epoch (null when a tf.data.Dataset does not say). */
  steps: number | null;
  /** Examples per epoch, when known. */
  samples: number | null;
  /** Examples per batch (null for a tf.data.Dataset: its elements are batches of their own size). */
  batchSize: number | null;
  /** The names of the epoch logs. */
  metrics: string[];
}

/** The hooks a callback object may have (tfjs's CustomCallbackArgs). */
const HOOKS = ['onTrainBegin', 'onTrainEnd', 'onEpochBegin', 'onEpochEnd', 'onBatchBegin', 'onBatchEnd', 'onYield'];

/**
 * The callbacks as tfjs's CallbackList, given the model they watch (a callback stops training by setting
 * `model.stopTraining`) and their params.
 */
export function callbackList(callbacks: TfCallbacks | undefined, model: tf.LayersModel, params: CallbackParams): tf.CallbackList {
  const all = callbacks === undefined ? [] : Array.isArray(callbacks) ? callbacks : [callbacks as TfCallback];
  for (const c of all) {
    const problem =
      typeof c === 'function'
        ? 'a function (a factory such as tf.callbacks.earlyStopping must be called: tf.callbacks.earlyStopping({ monitor: "val_loss" }))'
        : typeof c !== 'object' || c === null
          ? shown(c)
          : Object.entries(c).find(([k, v]) => HOOKS.includes(k) && typeof v !== 'function')?.[0];
    if (problem) throw new ConfigError('callbacks', `must be tf.Callback objects or objects of hooks ({ onEpochEnd(epoch, logs) {...} }), got ${HOOKS.includes(problem) ? `a ${problem} that is not a function` : problem}`);
  }
  const list = new tf.CallbackList(
    all.map((c) => (typeof (c as tf.Callback).setParams === 'function' ? (c as tf.Callback) : new tf.CustomCallback(c as tf.CustomCallbackArgs))),
  );
  list.setParams(params as unknown as tf.CustomCallback['params']);
  list.setModel(model);
  return list;
}

/**
 * The model callbacks watch: `model` itself, or for a tf.Sequential that was never compiled a functional
 * view of the same layers (such a Sequential refuses `stopTraining`, and SLL never compiles it). A compiled
 * one is watched itself, so that `model.stopTraining = true` from the user's own callback stops training.
 */
export function watchedModel(model: tf.LayersModel): tf.LayersModel {
  return model instanceof tf.Sequential && !compiled(model) ? tf.model({ inputs: model.inputs, outputs: model.outputs }) : model;
}

function compiled(model: tf.Sequential): boolean {
  try {
    void model.stopTraining;
    return true;
  } catch {
    return false;
  }
}
