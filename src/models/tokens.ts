/** From tokens [T, D] (a transformer's output) to one feature vector [D]: the class token, or the mean. */
import * as tf from '@tensorflow/tfjs';

/** How a unit's tokens [T, D] become the D features a head (or BP's classifier) reads. */
export type TokenPooling = 'cls' | 'mean';
/** Every {@link TokenPooling}. */
export const TOKEN_POOLINGS: readonly TokenPooling[] = ['cls', 'mean'];

/** Tokens [T, D] -> [D]: the class token, or the mean over tokens. */
export class TokenPool extends tf.layers.Layer {
  /** Registered class name. */
  static className = 'SllTokenPool';
  readonly mode: TokenPooling;

  constructor(args: { mode: TokenPooling; name?: string; inputShape?: number[] }) {
    super(args);
    this.mode = args.mode;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const [batch, , dim] = inputShape as number[];
    return [batch, dim];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => poolTokens((Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor3D, this.mode));
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), mode: this.mode };
  }
}

/** The class token [B, D] of tokens [B, T, D], or their mean over T. */
export function poolTokens(tokens: tf.Tensor3D, mode: TokenPooling): tf.Tensor2D {
  return tf.tidy(() => (mode === 'cls' ? tf.squeeze(tf.slice(tokens, [0, 0, 0], [-1, 1, -1]), [1]) : tf.mean(tokens, 1))) as tf.Tensor2D;
}

tf.serialization.registerClass(TokenPool);
