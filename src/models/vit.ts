/**
 * The Vision Transformer of the paper's section 5.3 (Dosovitskiy et al., pre-norm blocks as in timm): a
 * patch embedding (non-overlapping P x P patches projected to D dimensions) with a class token and learned
 * positions, then transformer blocks (x + MHSA(LN(x)), then x + MLP(LN(x)) with GELU). Each block is a unit
 * (the first also owns the embedding); groupUnits makes the block-wise SLL^{i+}. The layers are tfjs
 * layers registered with tf.serialization, so a ViT saves and loads like any tfjs model (an app loading it
 * imports `sll` first, which registers them).
 */
import * as tf from '@tensorflow/tfjs';
import { mixSeed } from '../data/random.js';
import { stepDropout } from './dropout.js';
import { ModelError, networkFromUnits, type Network } from './network.js';
import { gelu, layerNorm, linear, selfAttention } from './transformer-ops.js';


/** A tfjs weight initializer (the class is not exported by name). */
type Initializer = ReturnType<typeof tf.initializers.zeros>;

/** ViT weights are drawn from a normal distribution truncated at 2 std, std 0.02 (timm's init). */
function truncatedNormal(seed: number): Initializer {
  // mixSeed, never 0: tfjs's normal samplers take a seed of 0 as no seed at all.
  return tf.initializers.truncatedNormal({ stddev: 0.02, seed: seed || 1 });
}

/** PatchEmbedding's configuration. */
export interface PatchEmbeddingArgs {
  /** P: the image is cut into P x P patches. */
  patchSize: number;
  /** D, the embedding width. */
  dim: number;
  /** Seeds the initial weights. */
  seed: number;
  name?: string;
  /** [H, W, C], for a model's first layer. */
  inputShape?: number[];
}

/** Image [H, W, C] -> tokens [1 + N, D]: a class token, then the N patches projected to D, plus learned positions. */
export class PatchEmbedding extends tf.layers.Layer {
  /** Registered class name. */
  static className = 'SllPatchEmbedding';
  readonly patchSize: number;
  readonly dim: number;
  readonly seed: number;
  private kernel!: tf.LayerVariable;
  private bias!: tf.LayerVariable;
  private classToken!: tf.LayerVariable;
  private positions!: tf.LayerVariable;

  constructor(args: PatchEmbeddingArgs) {
    super(args);
    this.patchSize = args.patchSize;
    this.dim = args.dim;
    this.seed = args.seed;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const [, h, w, c] = inputShape as number[];
    const p = this.patchSize;
    if (h % p !== 0 || w % p !== 0) throw new ModelError(`a ${h}x${w} image does not split into ${p}x${p} patches`);
    const tokens = 1 + (h / p) * (w / p);
    this.kernel = this.addWeight('kernel', [p, p, c, this.dim], 'float32', truncatedNormal(mixSeed(this.seed, 1)));
    this.bias = this.addWeight('bias', [this.dim], 'float32', tf.initializers.zeros());
    this.classToken = this.addWeight('class_token', [1, 1, this.dim], 'float32', tf.initializers.zeros());
    this.positions = this.addWeight('positions', [1, tokens, this.dim], 'float32', truncatedNormal(mixSeed(this.seed, 2)));
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const [batch, h, w] = inputShape as number[];
    return [batch, 1 + (h / this.patchSize) * (w / this.patchSize), this.dim];
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D;
      const p = this.patchSize;
      const patches = tf.conv2d(x, this.kernel.read() as tf.Tensor4D, p, 'valid');
      const [batch, gh, gw] = patches.shape;
      const tokens = tf.reshape(tf.add(patches, this.bias.read()), [batch, gh * gw, this.dim]);
      // [cls; patches] + positions, as patches padded with a zero token plus a [1, T, D] term holding the class
      // token: no tile or concat of activations, whose gradients tfjs computes slice by slice.
      const first = tf.concat([this.classToken.read(), tf.zeros([1, gh * gw, this.dim])], 1);
      return tf.add(tf.pad(tokens, [[0, 0], [1, 0], [0, 0]]), tf.add(this.positions.read(), first));
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), patchSize: this.patchSize, dim: this.dim, seed: this.seed };
  }
}

/** The weights of a block, in the order they are created (and saved). */
type BlockWeight = 'ln1Gamma' | 'ln1Beta' | 'q' | 'qBias' | 'k' | 'kBias' | 'v' | 'vBias' | 'proj' | 'projBias' | 'ln2Gamma' | 'ln2Beta' | 'fc1' | 'fc1Bias' | 'fc2' | 'fc2Bias';

/** TransformerBlock's configuration. */
export interface TransformerBlockArgs {
  /** Attention heads (dividing the width). */
  heads: number;
  /** The MLP is this many times the width wide. */
  mlpRatio: number;
  /** Dropout rate during training (on attention weights and residual branches). */
  dropout: number;
  /** Seeds the initial weights. */
  seed: number;
  name?: string;
}

/** One pre-norm transformer block on tokens [T, D]: x + MHSA(LN(x)), then x + MLP(LN(x)). */
export class TransformerBlock extends tf.layers.Layer {
  /** Registered class name. */
  static className = 'SllTransformerBlock';
  readonly heads: number;
  readonly mlpRatio: number;
  readonly dropout: number;
  readonly seed: number;
  private w!: Record<BlockWeight, tf.LayerVariable>;

  constructor(args: TransformerBlockArgs) {
    super(args);
    this.heads = args.heads;
    this.mlpRatio = args.mlpRatio;
    this.dropout = args.dropout;
    this.seed = args.seed;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const dim = (inputShape as number[])[2];
    if (dim % this.heads !== 0) throw new ModelError(`width ${dim} does not split into ${this.heads} heads`);
    const hidden = Math.round(dim * this.mlpRatio);
    const ones = tf.initializers.ones();
    const zeros = tf.initializers.zeros();
    const weight = (name: string, shape: number[], init: Initializer) => this.addWeight(name, shape, 'float32', init);
    this.w = {
      ln1Gamma: weight('ln1_gamma', [dim], ones),
      ln1Beta: weight('ln1_beta', [dim], zeros),
      q: weight('q_kernel', [dim, dim], truncatedNormal(mixSeed(this.seed, 1, 0))),
      qBias: weight('q_bias', [dim], zeros),
      k: weight('k_kernel', [dim, dim], truncatedNormal(mixSeed(this.seed, 1, 1))),
      kBias: weight('k_bias', [dim], zeros),
      v: weight('v_kernel', [dim, dim], truncatedNormal(mixSeed(this.seed, 1, 2))),
      vBias: weight('v_bias', [dim], zeros),
      proj: weight('proj_kernel', [dim, dim], truncatedNormal(mixSeed(this.seed, 2))),
      projBias: weight('proj_bias', [dim], zeros),
      ln2Gamma: weight('ln2_gamma', [dim], ones),
      ln2Beta: weight('ln2_beta', [dim], zeros),
      fc1: weight('fc1_kernel', [dim, hidden], truncatedNormal(mixSeed(this.seed, 3))),
      fc1Bias: weight('fc1_bias', [hidden], zeros),
      fc2: weight('fc2_kernel', [hidden, dim], truncatedNormal(mixSeed(this.seed, 4))),
      fc2Bias: weight('fc2_bias', [dim], zeros),
    };
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    return inputShape as tf.Shape;
  }

  /** With `kwargs.step` (sll's training steps) the dropout masks are seeded by the block's seed and the step (dropout.ts). */
  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: { training?: boolean; step?: number } = {}): tf.Tensor {
    return tf.tidy(() => {
      const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor3D;
      // Read as tensors: 1-d (LayerNorm scales, biases) and 2-d (kernels) alike, typed where used.
      const w = Object.fromEntries(Object.entries(this.w).map(([k, lv]) => [k, lv.read()])) as Record<BlockWeight, tf.Tensor1D & tf.Tensor2D>;
      let site = 0;
      const { training, step } = kwargs;
      const drop = (t: tf.Tensor) => {
        if (!training || this.dropout === 0) return t;
        return step === undefined ? tf.dropout(t, this.dropout) : stepDropout(t, this.dropout, mixSeed(this.seed, 7, step, site++));
      };
      const x1 = tf.add(x, drop(selfAttention(layerNorm(x, w.ln1Gamma, w.ln1Beta) as tf.Tensor3D, this.heads, w, drop)));
      const hidden = gelu(linear(layerNorm(x1, w.ln2Gamma, w.ln2Beta), w.fc1, w.fc1Bias));
      return tf.add(x1, drop(linear(drop(hidden), w.fc2, w.fc2Bias)));
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), heads: this.heads, mlpRatio: this.mlpRatio, dropout: this.dropout, seed: this.seed };
  }
}

tf.serialization.registerClass(PatchEmbedding);
tf.serialization.registerClass(TransformerBlock);

/** The ViT's architecture. */
export interface VitOptions {
  inputShape: readonly number[];
  numClasses: number;
  /** P: images split into P x P patches (H and W multiples of P). */
  patchSize: number;
  /** D, the embedding width. */
  width: number;
  /** Transformer blocks, one unit each. */
  blocks: number;
  heads: number;
  /** The MLP's hidden width is mlpRatio * D. */
  mlpRatio: number;
  /** Dropout on attention weights and on the residual branches, during training. */
  dropout: number;
  /** Seeds the initial weights. */
  seed: number;
}

/** A ViT whose first unit is the patch embedding and block 1, and every later unit one block. */
export function buildVit(o: VitOptions): Network {
  const unitLayers: tf.layers.Layer[][] = [];
  for (let i = 0; i < o.blocks; i++) {
    const block = new TransformerBlock({ heads: o.heads, mlpRatio: o.mlpRatio, dropout: o.dropout, seed: mixSeed(o.seed, 6, i), name: `unit${i + 1}_block` });
    if (i > 0) {
      unitLayers.push([block]);
      continue;
    }
    const embed = new PatchEmbedding({ patchSize: o.patchSize, dim: o.width, seed: mixSeed(o.seed, 5), name: 'patch_embedding', inputShape: [...o.inputShape] });
    unitLayers.push([embed, block]);
  }
  const { patchSize, width, blocks, heads, mlpRatio, dropout, seed } = o;
  return networkFromUnits(
    { model: 'vit', inputShape: o.inputShape, numClasses: o.numClasses, options: { patchSize, width, blocks, heads, mlpRatio, dropout, seed } },
    unitLayers,
  );
}
