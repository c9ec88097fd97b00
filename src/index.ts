/** The sll library: Stochastic Layer-wise Learning on TensorFlow.js. */
export { BACKENDS, BackendError, useBackend, type BackendName } from './backend.js';
export * from './data/index.js';
export * from './models/index.js';
export { ProjectionHead, adaptiveAvgPoolMatrix, type ProjectionHeadConfig } from './objectives/projection.js';
export { stopGradient } from './objectives/stop-gradient.js';
export { alignmentLoss, negLogBhattacharyya, predictionLoss, unitLoss, type UnitLossParts } from './objectives/unit-loss.js';
export { DEFAULTS, OptionError, resolveOptions, type RunOptions } from './options.js';
export { loadModel, saveModel, ModelFileError } from './io/model-files.js';
export { BpTrainer } from './train/bp.js';
export { evaluate, type Evaluation } from './train/evaluate.js';
export { buildModel, fit, makeTrainer, type FitCallbacks, type FitResult, type UnitEpochMetrics } from './train/fit.js';
export { attachHeads, disposeHeaded, type HeadedNetwork } from './train/model.js';
export { SllTrainer } from './train/sll.js';
export type { Trainer } from './train/trainer.js';
export { loadRunData, runTraining, type RunSummary } from './run.js';
