import type { RunOptions } from '../options.js';
import { buildConvStack, buildVgg11 } from './conv.js';
import { buildMlp } from './mlp.js';
import { groupUnits, type Network } from './network.js';

export * from './network.js';
export { buildMlp, type MlpOptions } from './mlp.js';
export { VGG11, buildConvStack, buildVgg11, type ConvOptions } from './conv.js';

/**
 * The network named by `o.model`, for inputs of `inputShape` and `numClasses` classes, its layers grouped
 * into units of `o.unitLayers` (1: one unit per layer, plain SLL).
 */
export function buildNetwork(
  o: Pick<RunOptions, 'model' | 'layers' | 'width' | 'seed' | 'widthMult' | 'batchNorm' | 'unitLayers'>,
  inputShape: readonly number[],
  numClasses: number,
): Network {
  return groupUnits(buildLayerUnits(o, inputShape, numClasses), o.unitLayers);
}

/** One unit per layer (a dense layer, or conv [+ BN] + ReLU [+ pool]). */
function buildLayerUnits(
  o: Pick<RunOptions, 'model' | 'layers' | 'width' | 'seed' | 'widthMult' | 'batchNorm'>,
  inputShape: readonly number[],
  numClasses: number,
): Network {
  switch (o.model) {
    case 'mlp':
      return buildMlp({ inputShape, numClasses, layers: o.layers, width: o.width, seed: o.seed });
    case 'vgg11':
      return buildVgg11({ inputShape, numClasses, seed: o.seed, batchNorm: o.batchNorm, widthMult: o.widthMult });
    case 'convstack':
      return buildConvStack({ inputShape, numClasses, seed: o.seed, batchNorm: o.batchNorm, layers: o.layers, channels: o.width });
  }
}
