/** `sll stage`: one pipeline stage of a run whose coordinator (`sll train --pipeline N --broker URL`) is elsewhere. */
import * as path from 'node:path';
import { BACKENDS, useBackend, type BackendName } from '../backend.js';
import { OptionError, RUN_NAME } from '../recipe/options.js';
import { brokerUrlWithPassword, redactBrokerUrl, runBrokerStage } from '../train/redis-stages.js';
import type { Command } from './args.js';

export const stageCommand: Command = {
  name: 'stage',
  brief: 'one stage of a pipelined run over a Redis broker',
  summary:
    'Runs one stage of a pipelined SLL run over a Redis broker, on this machine: it takes its units, weights and options from the run\'s ' +
    'coordinator (sll train --pipeline N --broker URL --run NAME), trains them on what the previous stage sends, and ends with the run. ' +
    'Killed, it continues with --resume from its checkpoint and its place in the stream, with the same result; started again without ' +
    'it (or without the folder of its checkpoint) it refuses, as does a second process of the same stage. It stops when its coordinator ' +
    'ends, fails or is gone (its process ended, or its claim on the run lapsed: 20 s). Exit codes: 0 the run ended; 1 the run failed or its coordinator or ' +
    'broker is gone; 2 bad input (flags, a stage already running, a checkpoint missing); 130 / 143 / 129 stopped by SIGINT / SIGTERM / ' +
    'SIGHUP (continue with --resume).',
  usage: '--broker redis://HOST:PORT --run NAME --stage S --of N [--out DIR] [--resume] [--checkpoint-every N] [--backend NAME] [--threads N]',
  flags: {
    broker: { kind: 'string', required: true, description: 'the Redis broker, redis://HOST:PORT (a password: redis://:PASSWORD@HOST:PORT, or in the environment variable SLL_BROKER_PASSWORD)' },
    run: { kind: 'string', required: true, description: 'the run\'s name on the broker (its coordinator\'s --run, or its --out folder\'s name)' },
    stage: { kind: 'int', required: true, description: 'which stage this is, 1..N (stage 1 holds the first units)' },
    of: { kind: 'int', required: true, description: 'the run\'s number of stages N (its --pipeline)' },
    out: { kind: 'path', description: 'the stage\'s folder: its checkpoint (default runs/NAME/stages/stage-S)' },
    resume: { kind: 'boolean', description: 'continue from the stage\'s checkpoint after a crash (else start from the coordinator\'s init)' },
    checkpointEvery: { kind: 'int', description: 'checkpoint, then acknowledge the stream, every N steps (and at every epoch end) (default 64)' },
    backend: { kind: 'string', values: BACKENDS, description: 'tfjs backend (default: the run\'s)' },
    threads: { kind: 'int', description: 'BLAS threads of the native backend (default: the run\'s)' },
  },
  async run(values) {
    const stages = values.of as number;
    const stage = values.stage as number;
    if (stage > stages) throw new OptionError('stage', `--stage must be between 1 and --of (${stages}), got ${stage}`);
    const run = values.run as string;
    if (!RUN_NAME.test(run)) throw new OptionError('run', `--run must be letters, digits, '.', '-' or '_', got "${run}"`);
    // Stopped by hand: what it acknowledged is in its checkpoint, the rest is read again by --resume.
    const resumeHint = `sll stage --broker ${redactBrokerUrl(values.broker as string)} --run ${run} --stage ${stage} --of ${stages}${values.out ? ` --out ${values.out as string}` : ''} --resume`;
    // Started by a local coordinator (sll train --broker): a terminal's Ctrl-C reaches the whole process
    // group, and the coordinator, stopping after a checkpoint, needs its stages until it ends them.
    const parent = Number(process.env.SLL_STAGE_PARENT);
    for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
      if (parent > 0) {
        if (signal !== 'SIGTERM') process.on(signal, () => {});
        continue;
      }
      process.once(signal, () => {
        console.error(`sll: stage ${stage} of run "${run}" stopped by ${signal}; continue it with: ${resumeHint}`);
        process.exit(code);
      });
    }
    // Started by a local coordinator: end with it, even if it was killed outright.
    if (parent > 0) {
      setInterval(() => {
        try {
          process.kill(parent, 0);
        } catch {
          console.error(`stage ${stage} of run "${run}": its coordinator (pid ${parent}) is gone; stopping (a restarted run starts its stages again)`);
          process.exit(1);
        }
      }, 2000).unref();
    }
    const { seq } = await runBrokerStage({
      url: brokerUrlWithPassword(values.broker as string),
      run,
      stage: stage - 1,
      stages,
      dir: (values.out as string | undefined) ?? path.join('runs', run, 'stages', `stage-${stage}`),
      resume: values.resume === true,
      checkpointEvery: (values.checkpointEvery as number | undefined) ?? 64,
      setBackend: async (init) => {
        await useBackend(((values.backend as string | undefined) ?? init.run.backend) as BackendName, (values.threads as number | undefined) ?? init.run.threads);
      },
      log: (line) => console.error(line),
    });
    console.error(`stage ${stage} of run "${run}": done after message ${seq}`);
    return 0;
  },
};
