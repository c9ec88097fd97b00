/** Raised for missing, corrupt or inconsistent data; messages name the offending file or data set. */
export class DataError extends Error {
  override name = 'DataError';
  /** Set when the error came in the middle of training and a checkpoint was written first: the step it was written after. */
  checkpointStep?: number;
}
