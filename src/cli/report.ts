/** `sll report RUN... [--memory FILE] [--out FILE]`: runs and memory measurements as one HTML page. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { BACKENDS, useBackend, type BackendName } from '../backend.js';
import { writeFileAtomic } from '../io/model-files.js';
import { OptionError } from '../recipe/options.js';
import { buildReport } from '../report/page.js';
import type { Command } from './args.js';

export const reportCommand: Command = {
  name: 'report',
  summary:
    'Writes one self-contained HTML page (inline SVG charts, no scripts, no external URLs) about saved runs and memory ' +
    'measurements: the runs side by side, every unit\'s curves, UMAP and CKA of every unit\'s representations, weight and ' +
    'activation histograms, memory against depth, accuracy against the option the runs vary.',
  usage: 'RUN_DIR... [FILE.jsonl...] [--memory FILE.jsonl] [--out report.html] [--examples N] [--screenshot FILE.png]',
  positionals: true,
  flags: {
    memory: { kind: 'path', description: 'a file of `sll bench memory --json` lines (more such files may be given as arguments)' },
    out: { kind: 'path', default: 'report.html', description: 'the HTML file to write' },
    examples: { kind: 'int', default: 1000, description: 'test examples for the representations (UMAP, CKA) and activation histograms; 0 leaves them out' },
    backend: { kind: 'string', values: BACKENDS, default: 'auto', description: 'tfjs backend that runs the saved models' },
    screenshot: { kind: 'path', description: 'also write a full-page PNG of the report, taken in headless Chromium (needs playwright-core and a Chromium)' },
    chromium: { kind: 'path', default: '/usr/bin/chromium', description: 'the Chromium binary for --screenshot' },
  },
  notes: 'Arguments that are folders are runs (written by sll train); files are memory measurements.',
  async run(values, args) {
    const runs = args.filter((a) => fs.existsSync(a) && fs.statSync(a).isDirectory());
    const memory = [...args.filter((a) => !runs.includes(a)), ...(values.memory !== undefined ? [values.memory as string] : [])];
    const out = (values.out as string | undefined) ?? 'report.html';
    const examples = (values.examples as number | undefined) ?? 1000;
    if (runs.length > 0 && examples > 0) await useBackend((values.backend as BackendName | undefined) ?? 'auto');
    const { html, facts } = await buildReport({ runs, memory, examples });
    writeFileAtomic(out, html);
    const accuracies = facts.testAccuracy.map((a) => `${(100 * a).toFixed(2)}%`).join(', ');
    console.log(`wrote ${out}: ${runs.length} run(s)${accuracies ? ` (test accuracy ${accuracies})` : ''}, ${memory.length} memory file(s)`);
    facts.cka.forEach((c, i) => console.log(`  ${runs[i]}: CKA with the input per unit ${c.map((v) => v.toFixed(3)).join(' ')}`));
    for (const r of facts.memoryRatios) console.log(`  ${r.model} ${r.measure}: BP / SLL = ${r.ratio.toFixed(2)}x at depth ${r.depth}`);
    if (values.screenshot !== undefined) {
      await screenshot(out, values.screenshot as string, (values.chromium as string | undefined) ?? '/usr/bin/chromium');
      console.log(`wrote ${values.screenshot as string}`);
    }
    return 0;
  },
};

/** A full-page PNG of the HTML file `page`, taken in headless Chromium driven by playwright-core (which downloads no browser). */
async function screenshot(page: string, png: string, chromium: string): Promise<void> {
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
    await tab.screenshot({ path: png, fullPage: true });
  } finally {
    await browser.close();
  }
}
