/**
 * Commands and their flags: each command declares its flags once (kind, allowed values, default,
 * description), and both the parser and its --help come from that declaration.
 */
import { OptionError, flagName, type OptionKind } from '../recipe/options.js';

/** One flag of a command. */
export interface Flag {
  kind: OptionKind;
  description: string;
  /** The allowed values of a string flag. */
  values?: readonly string[];
  /** Shown in --help (omit when the description says what happens without the flag). */
  default?: unknown;
  required?: boolean;
  /** The smallest value of an int flag (default 1). */
  min?: number;
  /** The section of --help the flag is listed in. */
  group?: string;
}

/** A command of the `sll` CLI. */
export interface Command {
  /** As typed: 'train', 'bench memory'. */
  name: string;
  /** A few words for the list of commands in `sll --help`. */
  brief: string;
  /** What it does, at the top of its --help. */
  summary: string;
  /** What follows the name in the usage line, e.g. '[flags] DIR...'. */
  usage: string;
  /** Flags by option name (camelCase; the flag is its kebab-case). */
  flags: Readonly<Record<string, Flag>>;
  /** Takes positional arguments (named in `usage`). */
  positionals?: boolean;
  /** Extra text at the end of --help. */
  notes?: string;
  /** Runs the command with its parsed flags; resolves to the exit code. */
  run(values: Record<string, unknown>, positionals: string[]): Promise<number>;
}

const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;

/** True when argv asks for help. */
export function wantsHelp(argv: readonly string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

/**
 * Parses `argv` (after the command's name) by the command's flags: `--flag value` or `--flag=value`, a
 * boolean flag alone. Throws OptionError for an unknown flag, a missing value, a flag given twice, a value
 * that is not of the flag's kind (numbers are decimal: `0x2` is not one), or a missing required flag.
 */
export function parseFlags(argv: readonly string[], command: Command): { values: Record<string, unknown>; positionals: string[] } {
  const byFlag = new Map(Object.keys(command.flags).map((k) => [flagName(k), k]));
  const values: Record<string, unknown> = {};
  const positionals: string[] = [];
  const see = `(sll ${command.name} --help lists the flags)`;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('-') || NUMBER.test(arg)) {
      if (!command.positionals) throw new OptionError('argv', `sll ${command.name} takes no argument '${arg}' ${see}`);
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq >= 0 ? arg.slice(0, eq) : arg;
    const key = byFlag.get(flag);
    if (key === undefined) throw new OptionError('argv', `unknown flag ${flag} for sll ${command.name} ${see}`);
    if (key in values) throw new OptionError(key, `${flag} is given twice`);
    const spec = command.flags[key];
    let raw: string;
    if (eq >= 0) {
      raw = arg.slice(eq + 1);
    } else if (spec.kind === 'boolean') {
      raw = 'true';
    } else {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('-') && !NUMBER.test(next))) throw new OptionError(key, `${flag} needs a value (${valueHint(spec)})`);
      raw = next;
      i++;
    }
    values[key] = convert(key, spec, raw);
  }
  for (const [key, spec] of Object.entries(command.flags)) {
    if (spec.required && !(key in values)) throw new OptionError(key, `${flagName(key)} is required: ${spec.description}`);
  }
  return { values, positionals };
}

function convert(key: string, spec: Flag, raw: string): unknown {
  const flag = flagName(key);
  const number = (s: string) => {
    if (!NUMBER.test(s.trim())) throw new OptionError(key, `${flag} must be a number, got '${s}'`);
    return Number(s);
  };
  switch (spec.kind) {
    case 'boolean':
      if (raw !== 'true' && raw !== 'false') throw new OptionError(key, `${flag} takes no value, or true or false; got '${raw}'`);
      return raw === 'true';
    case 'int': {
      const n = number(raw);
      const min = spec.min ?? 1;
      if (!Number.isSafeInteger(n) || n < min) throw new OptionError(key, `${flag} must be an integer >= ${min}, got ${raw}`);
      return n;
    }
    case 'number':
      return number(raw);
    case 'numbers': {
      const list = raw.split(',').map(number);
      return list.length === 1 ? list[0] : list;
    }
    case 'path':
      if (raw === '') throw new OptionError(key, `${flag} needs a path`);
      return raw;
    case 'string':
      if (spec.values && !spec.values.includes(raw)) throw new OptionError(key, `${flag} must be one of ${spec.values.join(', ')}, got ${raw}`);
      return raw;
  }
}

function valueHint(spec: Flag): string {
  if (spec.values) return spec.values.join('|');
  return { int: 'an integer', number: 'a number', numbers: 'a number or a comma-separated list', path: 'a path', string: 'a value', boolean: '' }[spec.kind];
}

/** The --help of a command: usage, what it does, and every flag with its description, values and default. */
export function helpText(command: Command): string {
  const lines = [`usage: sll ${command.name} ${command.usage}`, '', command.summary];
  const groups = new Map<string, string[]>();
  for (const [key, spec] of Object.entries(command.flags)) {
    const name = `${flagName(key)}${spec.kind === 'boolean' ? '' : ` ${placeholder(spec)}`}`;
    const extra = [
      spec.required ? 'required' : null,
      spec.default !== undefined && spec.default !== null ? `default ${Array.isArray(spec.default) ? spec.default.join(',') : String(spec.default)}` : null,
    ].filter(Boolean);
    const text = `${spec.description}${extra.length ? ` (${extra.join('; ')})` : ''}`;
    const group = spec.group ?? 'flags';
    if (!groups.has(group)) groups.set(group, []);
    groups.get(group)!.push(formatRow(name, text));
  }
  for (const [group, rows] of groups) lines.push('', `${group}:`, ...rows);
  lines.push(formatRow('--help, -h', 'print this help and exit'));
  if (command.notes) lines.push('', command.notes);
  return lines.join('\n');
}

function placeholder(spec: Flag): string {
  if (spec.values) return spec.values.join('|');
  return { int: 'N', number: 'X', numbers: 'X[,X...]', path: 'PATH', string: 'VALUE', boolean: '' }[spec.kind];
}

/** A help row: the flag in a column of 30, the text wrapped at 110 characters. */
function formatRow(name: string, text: string): string {
  const indent = ' '.repeat(32);
  const words = text.split(' ');
  const out: string[] = [];
  let line = `  ${name}`.padEnd(32);
  if (name.length > 29) {
    out.push(`  ${name}`);
    line = indent;
  }
  for (const w of words) {
    if (line.length + w.length + 1 > 110 && line.trim() !== '') {
      out.push(line.trimEnd());
      line = indent;
    }
    line += (line.endsWith(' ') ? '' : ' ') + w;
  }
  out.push(line.trimEnd());
  return out.join('\n');
}
