/**
 * sll: Stochastic Layer-wise Learning on TensorFlow.js, the browser-safe core. Train your own tfjs model
 * with SLL (`fitSll`) or the backprop baseline (`fitBp`) from a tf.data.Dataset or tensors, get a
 * predicting tfjs model back (`toPredictor`), and use every part on its own: units and networks, the
 * projection heads and the unit loss (eq. 5), the trainers and the fit loop. Node-only parts (data files,
 * the native backend, the pipeline of workers, checkpoints, runs by name) come from `sll/node`.
 */
export * from './data/index.js';
export * from './models/index.js';
export { cloneLayer, cloneNetwork, layerFromJson, sequentialOf } from './models/clone.js';
export {
  MASK_SCALES,
  PROJECTION_DISTRIBUTIONS,
  PROJECTION_SCALES,
  ProjectionHead,
  adaptiveAvgPoolMatrix,
  featureDim,
  maskedProjection,
  maskedProduct,
  MASKED_PRODUCT_KERNEL,
  registerMaskedProjection,
  type MaskDraw,
  type MaskedProjectionFn,
  type MaskScale,
  type ProjectionDistribution,
  type ProjectionHeadConfig,
  type ProjectionScale,
} from './objectives/projection.js';
export { stopGradient } from './objectives/stop-gradient.js';
export {
  alignmentLoss,
  negLogBhattacharyya,
  predictionLoss,
  registerUnitLossStats,
  unitLoss,
  unitLossStats,
  type UnitLossParts,
  type UnitLossStatsFn,
} from './objectives/unit-loss.js';
export { MODEL_FORMAT, ModelFileError, fromArtifacts, toArtifacts, toPredictor, type SllArtifacts, type SllJson } from './io/artifacts.js';
export { MODEL_FILES, WEIGHTS_FILE, artifactsFromModelFiles, layersModelFiles, layersModelFromFiles, modelFiles, type ModelFileReader } from './io/model-layout.js';
export { BpTrainer } from './train/bp.js';
export { callbackList, type CallbackParams, type TfCallback, type TfCallbacks } from './train/callbacks.js';
export * from './train/config.js';
export { DivergenceError, assertFiniteStats, assertFiniteWeights } from './train/divergence.js';
export { SequentialEngine, statsReadEvery, type StepBatch, type StepEngine } from './train/engine.js';
export { evaluate, unitActivity, type EvaluateOptions, type Evaluation, type UnitActivity } from './train/evaluate.js';
export { linearProbe, type ProbeOptions, type ProbeResult } from './train/probe.js';
export {
  FitInterrupted,
  fit,
  initialState,
  type BatchInfo,
  type FitControl,
  type FitHooks,
  type FitResult,
  type FitSetup,
  type FitState,
  type ProgressHooks,
  type UnitEpochMetrics,
} from './train/fit.js';
export { fitBp, fitSll, type BpFitConfig, type FitHistory, type FitOptions, type SllFitConfig } from './train/fit-model.js';
export { FusedAdamOptimizer, type AdamStep, type NamedGradients, type NamedTensor } from './train/fused-adam.js';
export { WebGpuAdamOptimizer } from './gpu/adam.js';
export { WebGpuMomentumOptimizer } from './gpu/momentum.js';
export { webGpuUnitLossStats } from './gpu/unit-loss.js';
export { webGpuMaskedProjection } from './gpu/masked-projection.js';
export { useWebGpuKernels, type WebGpuKernelOptions } from './gpu/kernels.js';
export { MATMUL_TILINGS, type MatMulTiling } from './gpu/matmul.js';
export { measureStepMemory, type StepBytes } from './train/memory.js';
export { CONV_PROJ_DIM, attachHeads, disposeHeaded, disposeHeads, isHeadedNetwork, type HeadedNetwork, type Normalization } from './train/model.js';
export {
  ADAM_EPSILON,
  learningRateAt,
  makeOptimizer,
  optimizerState,
  registerAdam,
  registerMomentum,
  restoreOptimizerState,
  setLearningRate,
  type AdamFactory,
  type MomentumFactory,
  type OptimizerState,
} from './train/optimizers.js';
export { predict } from './train/predict.js';
export { SllTrainer } from './train/sll.js';
export { balancedStages, evenStages, measureUnitCosts, type StageRange } from './train/stages.js';
export { Stage, type StageOutput, type StageSnapshot } from './train/stage.js';
export { stageName, type ChainMessage, type HeadData, type LayerJson, type StageInit, type StageReply, type StageRun, type StepMessage } from './train/pipeline-protocol.js';
export { CodecError, decodeMessage, encodeMessage } from './io/message-codec.js';
export { STAT_COLUMNS, type EpochSchedule, type Trainer } from './train/trainer.js';
