#!/usr/bin/env node
/** The `sll` command: a thin shell over the library (parse flags, print progress, call it). */
import * as fs from 'node:fs';
import { BackendError } from '../backend.js';
import { DataError } from '../data/errors.js';
import { ModelFileError } from '../io/artifacts.js';
import { CheckpointError } from '../io/checkpoint.js';
import { WriteError } from '../io/model-files.js';
import { RunFolderError } from '../io/run-folder.js';
import { ModelError } from '../models/network.js';
import { OptionError } from '../recipe/options.js';
import { ConfigError } from '../train/config.js';
import { StageError } from '../train/pipeline.js';
import { BrokerError } from '../train/redis-stages.js';
import { helpText, parseFlags, wantsHelp, type Command } from './args.js';
import { COMMANDS } from './commands.js';

function version(): string {
  const pkg = JSON.parse(fs.readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function usage(): string {
  const rows = COMMANDS.map((c) => `  sll ${c.name.padEnd(14)} ${c.brief}`);
  return [
    'usage: sll COMMAND [flags]      (sll COMMAND --help for its flags)',
    '',
    'sll trains deep networks with Stochastic Layer-wise Learning (SLL): every unit learns from its own loss,',
    'no gradient crosses a unit boundary. The backprop baseline is --method bp.',
    '',
    'commands:',
    ...rows,
    '',
    '  sll --version                 print the version',
    '  sll --help                    print this help',
    '',
    'Every command also takes --debug: an internal error prints its stack.',
    'Exit codes: 0 done; 1 a write failed (e.g. disk full), training diverged, or an internal error;',
    '2 bad input (flags, data, files, a folder in use); 128 + N stopped by signal N (sll train --help).',
  ].join('\n');
}

/** The command `argv` names (two words for `bench memory`), and the rest of argv. */
function findCommand(argv: string[]): { command: Command; rest: string[] } | null {
  for (const command of COMMANDS) {
    const words = command.name.split(' ');
    if (words.every((w, i) => argv[i] === w)) return { command, rest: argv.slice(words.length) };
  }
  return null;
}

/** Errors that are the user's to fix (flags, data, files, folders): exit 2 with the message alone. */
const USER_ERRORS = [OptionError, ConfigError, DataError, ModelFileError, ModelError, BackendError, CheckpointError, RunFolderError, BrokerError];

async function main(argv: string[]): Promise<number> {
  const debug = argv.includes('--debug');
  argv = argv.filter((a) => a !== '--debug');
  try {
    // `sll help COMMAND` is `sll COMMAND --help`.
    if (argv[0] === 'help' && argv.length > 1) argv = [...argv.slice(1), '--help'];
    if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
      console.log(usage());
      return 0;
    }
    if (argv[0] === '--version' || argv[0] === '-v') {
      console.log(version());
      return 0;
    }
    const found = findCommand(argv);
    if (!found) {
      const known = COMMANDS.map((c) => c.name).join(', ');
      const benches = COMMANDS.filter((c) => c.name.startsWith('bench ')).map((c) => `sll ${c.name}`);
      if (argv[0] === 'bench') throw new OptionError('command', `sll bench takes a measurement: ${benches.join(', ')} (e.g. ${benches[0]} --help)`);
      throw new OptionError('command', `unknown command '${argv.slice(0, argv[0] === 'bench' ? 2 : 1).join(' ')}'; commands: ${known} (sll --help)`);
    }
    const { command, rest } = found;
    if (wantsHelp(rest)) {
      console.log(helpText(command));
      return 0;
    }
    const { values, positionals } = parseFlags(rest, command);
    return await command.run(values, positionals);
  } catch (e) {
    if (USER_ERRORS.some((kind) => e instanceof kind)) {
      console.error(`sll: ${(e as Error).message}`);
      if (debug) console.error((e as Error).stack);
      return 2;
    }
    // A failed write, or a pipeline stage that crashed or went silent: the run's own fault, one line, exit 1.
    if (e instanceof WriteError || e instanceof StageError) {
      console.error(`sll: ${e.message}`);
      if (debug) console.error(e.stack);
      return 1;
    }
    const err = e instanceof Error ? e : new Error(String(e));
    console.error(`sll: internal error: ${err.name}: ${err.message}`);
    console.error(debug ? err.stack : 'sll: run again with --debug for the stack, and report it with the command that caused it');
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
