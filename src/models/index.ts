export * from './network.js';
export { buildMlp, type MlpOptions } from './mlp.js';
export { VGG11, buildConvStack, buildVgg11, type ConvOptions } from './conv.js';
