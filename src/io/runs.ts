/**
 * Saved runs side by side: every claim is SLL against BP, so `sll compare` reads the summary.json of
 * each run and lines up accuracy, time and the options in which the runs differ.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ModelFileError } from './artifacts.js';
import { missingRunFile } from './model-files.js';

/** DIR/summary.json of a run. */
export interface RunSummary {
  /** The run's id (as in its run.json and checkpoints); absent in runs of older versions. */
  run_id?: string;
  method: string;
  model: string;
  dataset: string;
  epochs: number;
  /** The model's prediction (last head for SLL, classifier for BP), 0..1. */
  test_accuracy: number;
  /** Each head's (SLL) or the classifier's (BP). */
  unit_test_accuracy: number[];
  ensemble_test_accuracy: number | null;
  train_seconds: number;
  samples_per_second: number;
  train_examples: number;
  test_examples: number;
  backend: string;
  /** The run's options (the CLI's flags, camelCase). */
  options: Record<string, unknown>;
}

/** A run read for comparison. */
export interface ComparedRun {
  dir: string;
  summary: RunSummary;
}

/** Runs side by side. */
export interface RunComparison {
  runs: ComparedRun[];
  /** Options whose values are not the same in every run (the recipe differences), in option order. */
  differing: string[];
}

/** DIR/summary.json, checked for the fields a comparison reads. */
export function readRunSummary(dir: string): RunSummary {
  const file = path.join(dir, 'summary.json');
  if (!fs.existsSync(file)) throw new ModelFileError(missingRunFile(dir, 'summary.json'));
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

/** The summaries of the runs in `dirs` and the options in which they differ. */
export function compareRuns(dirs: readonly string[]): RunComparison {
  if (dirs.length === 0) throw new ModelFileError('no runs to compare: give one or more directories written by sll train');
  const runs = dirs.map((dir) => ({ dir, summary: readRunSummary(dir) }));
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.summary.options)))];
  const differing = keys.filter((k) => {
    const values = runs.map((r) => JSON.stringify(r.summary.options[k]));
    return new Set(values).size > 1;
  });
  return { runs, differing };
}
