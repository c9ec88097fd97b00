/** Raised for missing, corrupt or inconsistent data; messages name the offending file or data set. */
export class DataError extends Error {
  override name = 'DataError';
}
