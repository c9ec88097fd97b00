/** Ctrl-C and its kin for long commands: the first signal asks the run to stop after a checkpoint, a second quits at once. */

/** Signals that stop a run after a checkpoint, and the exit code of each (128 + its number, as shells report it). */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
const SIGNAL_EXIT: Record<string, number> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };

/** Stop requests heard while a command runs. */
export interface StopSignals {
  /** True once a stop signal came (what RunControl.stopRequested polls). */
  stopRequested(): boolean;
  /** The exit code of the signal that came (SIGINT's when none did). */
  exitCode(): number;
  /** Stops listening. */
  dispose(): void;
}

/** Listens for SIGINT, SIGTERM and SIGHUP until `dispose()`. */
export function listenForStop(): StopSignals {
  let signal: NodeJS.Signals | null = null;
  const onSignal = (s: NodeJS.Signals) => {
    if (signal) process.exit(SIGNAL_EXIT[s]);
    signal = s;
    process.stderr.write(`\nsll: ${s}: stopping after this step (a checkpoint is written first); send it again to quit now\n`);
  };
  for (const s of STOP_SIGNALS) process.on(s, onSignal);
  return {
    stopRequested: () => signal !== null,
    exitCode: () => SIGNAL_EXIT[signal ?? 'SIGINT'],
    dispose: () => {
      for (const s of STOP_SIGNALS) process.off(s, onSignal);
    },
  };
}
