/**
 * Saved runs side by side: every claim is SLL against BP, so `sll compare` reads the summary.json of
 * each run and lines up accuracy, time and the options in which the runs differ.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { RunSummary } from '../run.js';
import { ModelFileError } from './model-files.js';

export interface ComparedRun {
  dir: string;
  summary: RunSummary;
}

export interface RunComparison {
  runs: ComparedRun[];
  /** Options whose values are not the same in every run (the recipe differences), in option order. */
  differing: string[];
}

/** DIR/summary.json, checked for the fields a comparison reads. */
export function readRunSummary(dir: string): RunSummary {
  const file = path.join(dir, 'summary.json');
  if (!fs.existsSync(file)) throw new ModelFileError(`${file} not found: is ${dir} a directory written by sll train?`);
  let summary: RunSummary;
  try {
    summary = JSON.parse(fs.readFileSync(file, 'utf8')) as RunSummary;
  } catch (e) {
    throw new ModelFileError(`${file} is not valid JSON (${(e as Error).message})`);
  }
  for (const key of ['method', 'test_accuracy', 'unit_test_accuracy', 'train_seconds', 'options'] as const) {
    if (summary[key] === undefined) throw new ModelFileError(`${file} has no '${key}': not a summary written by sll train`);
  }
  return summary;
}

export function compareRuns(dirs: readonly string[]): RunComparison {
  if (dirs.length === 0) throw new ModelFileError('no runs to compare: give one or more directories written by sll train');
  const runs = dirs.map((dir) => ({ dir, summary: readRunSummary(dir) }));
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.summary.options)))];
  const differing = keys.filter((k) => {
    const values = runs.map((r) => JSON.stringify((r.summary.options as unknown as Record<string, unknown>)[k]));
    return new Set(values).size > 1;
  });
  return { runs, differing };
}
