/** Flags <-> RunOptions: every option is a flag of the same name in kebab-case. */
import { parseArgs } from 'node:util';
import { DEFAULTS, OptionError, flagName, type RunOptions } from '../options.js';

type Kind = 'number' | 'string' | 'boolean' | 'numbers';
const KINDS: Record<keyof RunOptions, Kind> = {
  model: 'string',
  layers: 'number',
  unitLayers: 'number',
  width: 'number',
  widthMult: 'number',
  batchNorm: 'boolean',
  dataset: 'string',
  dataDir: 'string',
  trainLimit: 'number',
  testLimit: 'number',
  cropPadding: 'number',
  flip: 'boolean',
  imageSize: 'number',
  method: 'string',
  epochs: 'number',
  batchSize: 'number',
  lr: 'numbers',
  lrSchedule: 'string',
  optimizer: 'string',
  momentum: 'number',
  lambda: 'numbers',
  keep: 'number',
  maskScale: 'string',
  projScale: 'string',
  projection: 'string',
  projDim: 'number',
  firstParent: 'string',
  seed: 'number',
  ensemble: 'boolean',
  backend: 'string',
  threads: 'number',
  checkpointEvery: 'number',
  pipeline: 'number',
  stages: 'string',
};

export const RUN_FLAGS = Object.keys(KINDS).map((k) => flagName(k));

/**
 * Parses `argv` (after the command name) into options; `extra` names the command's own string flags
 * (e.g. out). Throws OptionError on an unknown flag or a value that is not of the flag's type.
 */
export function parseRunFlags(
  argv: string[],
  extra: string[],
  allowRunOptions = true,
): { options: Partial<RunOptions>; extra: Record<string, string | undefined> } {
  const keys = allowRunOptions ? (Object.keys(KINDS) as (keyof RunOptions)[]) : [];
  const spec: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const k of keys) spec[flagName(k).slice(2)] = { type: KINDS[k] === 'boolean' ? 'boolean' : 'string' };
  for (const e of extra) spec[flagName(e).slice(2)] = { type: 'string' };
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: glueNegativeValues(argv, spec), options: spec, strict: true, allowPositionals: false }));
  } catch (e) {
    const allowed = Object.keys(spec).map((f) => `--${f}`).join(' ');
    throw new OptionError('argv', `${(e as Error).message.split('\n')[0]}\nallowed flags: ${allowed}`);
  }
  const options: Partial<RunOptions> = {};
  for (const k of keys) {
    const raw = values[flagName(k).slice(2)];
    if (raw === undefined) continue;
    (options as Record<string, unknown>)[k] = convert(k, KINDS[k], raw);
  }
  const extraValues = Object.fromEntries(extra.map((e) => [e, values[flagName(e).slice(2)] as string | undefined]));
  return { options, extra: extraValues };
}

/** `--lambda -1` -> `--lambda=-1`: parseArgs takes a value starting with '-' for a flag and refuses it. */
function glueNegativeValues(argv: string[], spec: Record<string, { type: string }>): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i].startsWith('--') ? spec[argv[i].slice(2)] : undefined;
    const next = argv[i + 1];
    if (flag?.type === 'string' && next !== undefined && /^-\d|^-\./.test(next)) {
      out.push(`${argv[i]}=${next}`);
      i++;
    } else {
      out.push(argv[i]);
    }
  }
  return out;
}

function convert(key: keyof RunOptions, kind: Kind, raw: string | boolean): unknown {
  if (kind === 'boolean' || kind === 'string') return raw;
  const toNumber = (s: string) => {
    const v = s.trim() === '' ? NaN : Number(s);
    if (Number.isNaN(v)) throw new OptionError(key, `${flagName(key)} must be a number, got '${s}'`);
    return v;
  };
  if (kind === 'number') return toNumber(raw as string);
  const list = (raw as string).split(',').map(toNumber);
  return list.length === 1 ? list[0] : list;
}

export function defaultsHelp(): string {
  return (Object.keys(KINDS) as (keyof RunOptions)[])
    .map((k) => `  ${flagName(k).padEnd(16)} default ${JSON.stringify(DEFAULTS[k])}`)
    .join('\n');
}
