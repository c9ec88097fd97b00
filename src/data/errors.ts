/** Raised for missing, corrupt or inconsistent data; messages name the offending file or data set. */
export class DataError extends Error {
  override name = 'DataError';
  /** Set when the error came in the middle of training and a checkpoint was written first: the step it was written after. */
  checkpointStep?: number;
}

/** `path` when it is a non-empty string (a loader's folder argument); DataError naming `loader` otherwise. */
export function requirePath(path: unknown, loader: string): string {
  if (typeof path === 'string' && path !== '') return path;
  throw new DataError(`${loader} needs the path of its data folder, got ${path === '' ? 'an empty string' : String(path)}`);
}
