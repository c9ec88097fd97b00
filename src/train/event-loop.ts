/**
 * Long loops (training steps, evaluation batches) hand the event loop a turn between iterations, so that
 * timers, I/O and signal handlers (Ctrl-C) are heard while they run.
 */

/** Resolves after the event loop has had a turn (setImmediate in Node, a zero timeout in a browser). */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => (typeof setImmediate === 'function' ? setImmediate(resolve) : setTimeout(resolve, 0)));
}
