/** `sll bench memory`: peak training memory of one step against depth, SLL beside BP (paper Fig. 2). */
import { parseArgs } from 'node:util';
import { useBackend } from '../backend.js';
import { OptionError, resolveOptions, type RunOptions } from '../options.js';
import { measureStepMemory, type StepMemory } from '../train/memory.js';

const MODELS = { mlp: 'mlp', conv: 'convstack' } as const;

export async function benchMemory(argv: string[]): Promise<void> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        model: { type: 'string', default: 'mlp' },
        depths: { type: 'string', default: '2,4,8,16' },
        method: { type: 'string', default: 'sll,bp' },
        width: { type: 'string' },
        'batch-size': { type: 'string' },
        'image-size': { type: 'string', default: '32' },
        optimizer: { type: 'string', default: 'sgd' },
        backend: { type: 'string', default: 'auto' },
        json: { type: 'boolean', default: false },
      },
    }));
  } catch (e) {
    throw new OptionError('argv', `${(e as Error).message.split('\n')[0]}\nallowed: --model mlp|conv --depths 2,4,8,16 --method sll,bp --width W --batch-size B --image-size S --optimizer sgd|adam --backend NAME --json`);
  }
  const kind = values.model as string;
  if (!(kind in MODELS)) throw new OptionError('model', `--model must be one of mlp, conv, got ${kind}`);
  const conv = kind === 'conv';
  const list = (flag: string) => String(values[flag]).split(',').map((s) => s.trim());
  const depths = list('depths').map((d) => {
    const n = Number(d);
    if (!Number.isInteger(n) || n < 1) throw new OptionError('depths', `--depths must be positive integers, got ${d}`);
    return n;
  });
  const methods = list('method') as RunOptions['method'][];
  const size = Number(values['image-size']);
  if (!Number.isInteger(size) || size < 1) throw new OptionError('imageSize', `--image-size must be a positive integer, got ${values['image-size']}`);
  const inputShape = conv ? [size, size, 3] : [28, 28, 1];
  const base: Partial<RunOptions> = {
    model: MODELS[kind as keyof typeof MODELS],
    width: values.width ? Number(values.width) : conv ? 64 : 1024,
    batchSize: values['batch-size'] ? Number(values['batch-size']) : conv ? 32 : 128,
    optimizer: values.optimizer as RunOptions['optimizer'],
    backend: values.backend as RunOptions['backend'],
    cropPadding: 0,
  };
  // Validate every combination before measuring any.
  for (const method of methods) for (const layers of depths) resolveOptions({ ...base, method, layers });
  await useBackend(base.backend!);
  const rows: StepMemory[] = [];
  for (const method of methods) {
    for (const layers of depths) {
      const row = await measureStepMemory({ ...base, method, layers }, inputShape, 10);
      const out = { ...row, model: kind };
      rows.push(out as StepMemory);
      if (values.json) console.log(JSON.stringify(out));
    }
  }
  const mb = (b: number) => (b / 2 ** 20).toFixed(1).padStart(9);
  const table = [
    `peak memory of one training step: ${kind}, width ${base.width}, batch ${base.batchSize}, ${base.optimizer}${conv ? `, ${size}x${size} images` : ''} (MiB)`,
    'method  depth     peak    params  activations',
    ...rows.map((r) => `${r.method.padEnd(6)}  ${String(r.depth).padStart(5)}  ${mb(r.peak_bytes)}  ${mb(r.param_bytes)}  ${mb(r.activation_peak_bytes)}`),
  ].join('\n');
  // With --json, stdout carries only JSON lines; the table goes to stderr.
  if (values.json) console.error(table);
  else console.log(table);
}
