import type { RunOptions } from '../options.js';
import { buildMlp } from './mlp.js';
import type { Network } from './network.js';

export * from './network.js';
export { buildMlp, type MlpOptions } from './mlp.js';

/** The network named by `o.model`, for inputs of `inputShape` and `numClasses` classes. */
export function buildNetwork(
  o: Pick<RunOptions, 'model' | 'layers' | 'width' | 'seed'>,
  inputShape: readonly number[],
  numClasses: number,
): Network {
  switch (o.model) {
    case 'mlp':
      return buildMlp({ inputShape, numClasses, layers: o.layers, width: o.width, seed: o.seed });
  }
}
