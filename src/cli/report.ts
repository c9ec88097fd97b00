/** `sll report RUN... [--memory FILE] [--out FILE]`: runs and memory measurements as one HTML page. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { BACKENDS, useBackend, type BackendName } from '../backend.js';
import { writeFileAtomic } from '../io/model-files.js';
import { DataError } from '../data/errors.js';
import { OptionError } from '../recipe/options.js';
import { buildReport } from '../report/page.js';
import type { Command } from './args.js';

export const reportCommand: Command = {
  name: 'report',
  brief: 'one HTML page about runs and memory: curves, UMAP, CKA, histograms',
  summary:
    'Writes one self-contained HTML page (inline SVG charts, no scripts, no external URLs) about saved runs and memory ' +
    'measurements: the runs side by side, every unit\'s curves, UMAP and CKA of every unit\'s representations, weight and ' +
    'activation histograms, memory against depth, accuracy against the option the runs vary.',
  usage: 'RUN_DIR... [FILE.jsonl...] [--memory FILE.jsonl] [--out report.html] [--examples N] [--screenshot FILE.png] [--figures DIR]',
  positionals: true,
  flags: {
    memory: { kind: 'path', description: 'a file of `sll bench memory --json` lines (more such files may be given as arguments)' },
    out: { kind: 'path', default: 'report.html', description: 'the HTML file to write' },
    examples: { kind: 'int', min: 0, default: 1000, description: 'test examples for the representations (UMAP, CKA) and activation histograms; 0 leaves them out' },
    backend: { kind: 'string', values: BACKENDS, default: 'auto', description: 'tfjs backend that runs the saved models' },
    screenshot: { kind: 'path', description: 'also write a full-page PNG of the report, taken in headless Chromium (needs playwright-core and a Chromium)' },
    figures: { kind: 'path', description: 'also write each figure of the report as DIR/<figure id>.png (e.g. curves.png, embedding-1.png), taken in headless Chromium' },
    chromium: { kind: 'path', default: '/usr/bin/chromium', description: 'the Chromium binary for --screenshot and --figures' },
  },
  notes: 'Arguments that are folders are runs (written by sll train); files are memory measurements.',
  async run(values, args) {
    const twice = args.find((a, i) => args.findIndex((b) => path.resolve(b) === path.resolve(a)) !== i);
    if (twice !== undefined) throw new OptionError('argv', `${twice} is given twice`);
    const missing = args.find((a) => !fs.existsSync(a));
    if (missing !== undefined) throw new DataError(`${missing}: no such run folder or memory file`);
    const runs = args.filter((a) => fs.statSync(a).isDirectory());
    const memory = [...args.filter((a) => !runs.includes(a)), ...(values.memory !== undefined ? [values.memory as string] : [])];
    const folder = memory.find((m) => fs.existsSync(m) && fs.statSync(m).isDirectory());
    if (folder !== undefined) throw new OptionError('memory', `--memory takes a file of sll bench memory --json lines; ${folder} is a folder (a run? give it as an argument)`);
    const out = (values.out as string | undefined) ?? 'report.html';
    // Checked before the work (seconds to minutes), not when the page is written.
    const outDir = path.dirname(path.resolve(out));
    if (!fs.existsSync(outDir) || !fs.statSync(outDir).isDirectory()) throw new OptionError('out', `--out ${out}: the folder ${outDir} does not exist`);
    if (fs.existsSync(out) && fs.statSync(out).isDirectory()) throw new OptionError('out', `--out ${out} is a folder: give the HTML file to write`);
    const examples = (values.examples as number | undefined) ?? 1000;
    if (runs.length > 0 && examples > 0) await useBackend((values.backend as BackendName | undefined) ?? 'auto');
    const { html, facts } = await buildReport({ runs, memory, examples });
    writeFileAtomic(out, html);
    const accuracies = facts.testAccuracy.map((a) => `${(100 * a).toFixed(2)}%`).join(', ');
    console.log(`wrote ${out}: ${runs.length} run(s)${accuracies ? ` (test accuracy ${accuracies})` : ''}, ${memory.length} memory file(s)`);
    facts.cka.forEach((c, i) => console.log(`  ${runs[i]}: CKA with the input per unit ${c.map((v) => v.toFixed(3)).join(' ')}`));
    for (const r of facts.memoryRatios) console.log(`  ${r.model} ${r.measure}: BP / SLL = ${r.ratio.toFixed(2)}x at depth ${r.depth}`);
    const png = values.screenshot as string | undefined;
    const figures = values.figures as string | undefined;
    if (png !== undefined || figures !== undefined) {
      const written = await screenshot(out, { png, figures }, (values.chromium as string | undefined) ?? '/usr/bin/chromium');
      console.log(`wrote ${written.join(', ')}`);
    }
    return 0;
  },
};

/**
 * A full-page PNG of the HTML file `page` and/or one PNG per figure in a folder, taken in headless Chromium
 * driven by playwright-core (which downloads no browser). Returns the files written.
 */
async function screenshot(page: string, to: { png?: string; figures?: string }, chromium: string): Promise<string[]> {
  if (!fs.existsSync(chromium)) throw new OptionError('chromium', `--screenshot needs a Chromium: ${chromium} not found (apt-get install chromium, or --chromium PATH)`);
  let playwright: typeof import('playwright-core');
  try {
    playwright = await import('playwright-core');
  } catch {
    throw new OptionError('screenshot', '--screenshot needs the npm package playwright-core (npm install playwright-core)');
  }
  const browser = await playwright.chromium.launch({ executablePath: chromium, args: ['--no-sandbox'] });
  try {
    const tab = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    await tab.goto(pathToFileURL(path.resolve(page)).href);
    const written: string[] = [];
    if (to.png) {
      await tab.screenshot({ path: to.png, fullPage: true });
      written.push(to.png);
    }
    if (to.figures) {
      fs.mkdirSync(to.figures, { recursive: true });
      for (const id of await tab.$$eval('figure[id]', (fs) => fs.map((f) => f.id))) {
        const file = path.join(to.figures, `${id}.png`);
        // The chart itself, not the page-wide figure around it.
        await tab.locator(`figure[id="${id}"] > svg`).first().screenshot({ path: file });
        written.push(file);
      }
    }
    return written;
  } finally {
    await browser.close();
  }
}
