#!/usr/bin/env node
/** The `sll` command: a thin shell over the library (parse flags, print progress, call it). */
import * as fs from 'node:fs';
import { BackendError } from '../backend.js';
import { DataError } from '../data/errors.js';
import { ModelFileError } from '../io/artifacts.js';
import { CheckpointError } from '../io/checkpoint.js';
import { OptionError } from '../recipe/options.js';
import { ConfigError } from '../train/config.js';
import { helpText, parseFlags, wantsHelp, type Command } from './args.js';
import { COMMANDS } from './commands.js';

function version(): string {
  const pkg = JSON.parse(fs.readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

function usage(): string {
  const rows = COMMANDS.map((c) => `  sll ${c.name.padEnd(14)} ${c.summary.split('. ')[0].replace(/\.$/, '')}`);
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

async function main(argv: string[]): Promise<number> {
  try {
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
    if (
      e instanceof OptionError ||
      e instanceof ConfigError ||
      e instanceof DataError ||
      e instanceof ModelFileError ||
      e instanceof BackendError ||
      e instanceof CheckpointError
    ) {
      console.error(`sll: ${e.message}`);
      return 2;
    }
    throw e;
  }
}

process.exitCode = await main(process.argv.slice(2));
