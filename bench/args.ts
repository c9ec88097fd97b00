/**
 * The command line of the bench scripts: `--help` prints the script's own header (its usage and what it
 * measures), and a bad flag or value ends with one line naming it and exit 2, never a stack trace.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The running script's name as npm runs it (bench:data for dist/bench/data.js, bundle:gpu for bundle-gpu.js). */
const base = path.basename(process.argv[1] ?? 'bench', '.js');
const script = base === 'bundle-gpu' ? 'bundle:gpu' : `bench:${base}`;

/** Ends the script: `bench:NAME: message`, exit 2. */
export function fail(message: string): never {
  process.stderr.write(`${script}: ${message} (--help for the usage)\n`);
  process.exit(2);
}

/** `parse()`'s flags (node:util parseArgs), after `--help` (printed, exit 0) and with a bad flag told by `fail`. */
export function benchArgs<T>(parse: () => T): T {
  if (process.argv.slice(2).some((a) => a === '--help' || a === '-h')) {
    const source = fs.readFileSync(process.argv[1], 'utf8');
    const header = /^(?:#!.*\n)?\/\*\*([\s\S]*?)\*\//.exec(source)?.[1] ?? '';
    console.log(header.replace(/^[ \t]*\* ?/gm, '').trim());
    process.exit(0);
  }
  try {
    return parse();
  } catch (e) {
    fail((e as Error).message);
  }
}

/** `v` as an integer >= `min`, else `fail` naming --`name`. */
export function intFlag(name: string, v: string | undefined, min = 1): number {
  const n = Number(v);
  if (v === undefined || v.trim() === '' || !Number.isSafeInteger(n) || n < min) fail(`--${name} must be an integer >= ${min}, got ${v}`);
  return n;
}

/** The comma-separated items of `v`, each one of `allowed` (when given), at least one. */
export function listFlag<T extends string>(name: string, v: string, allowed?: readonly T[]): T[] {
  const items = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (allowed) for (const s of items) if (!allowed.includes(s as T)) fail(`--${name}: '${s}' is not one of ${allowed.join(', ')}`);
  if (items.length === 0) fail(`--${name} is empty`);
  return items as T[];
}
