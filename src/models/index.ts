export * from './network.js';
export { buildMlp, type MlpOptions } from './mlp.js';
export { VGG11, buildConvStack, buildVgg11, type ConvOptions } from './conv.js';
export { TOKEN_POOLINGS, TokenPool, poolTokens, type TokenPooling } from './tokens.js';
export { LAYER_NORM_EPSILON, gelu, layerNorm, linear, selfAttention, type AttentionWeights } from './transformer-ops.js';
export { PatchEmbedding, TransformerBlock, buildVit, type PatchEmbeddingArgs, type TransformerBlockArgs, type VitOptions } from './vit.js';
