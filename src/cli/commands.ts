/** Every command of the `sll` CLI, in the order --help lists them. */
import type { Command } from './args.js';
import { benchMemoryCommand } from './bench-memory.js';
import { compareCommand } from './compare.js';
import { convertCommand } from './convert.js';
import { evaluateCommand } from './evaluate.js';
import { predictCommand } from './predict.js';
import { reportCommand } from './report.js';
import { stageCommand } from './stage.js';
import { sweepCommand } from './sweep.js';
import { trainCommand } from './train.js';

export const COMMANDS: readonly Command[] = [trainCommand, sweepCommand, evaluateCommand, predictCommand, compareCommand, reportCommand, benchMemoryCommand, convertCommand, stageCommand];
