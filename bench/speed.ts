/**
 * npm run bench:speed [-- --json] [--repeats R] [--steps S] [--warmup W] [--threads 1,2]
 *   [--cases mlp-sll,mlp-bp,conv-unit,vit-unit,vgg11-step,vgg11-bp,vgg11-bn-step,vgg11-bn-bp] [--engines native,wasm,torch] [--timeout SECONDS]
 *   [--torch-blas-threads best|1|same] [--omp-wait-policy PASSIVE|ACTIVE] [--python /usr/bin/python3] [--verbose]
 *
 * Milliseconds per training step of our engines (`native`, `wasm`) against PyTorch on the same math
 * (cases: see bench/speed-step.ts and bench/torch_ref.py):
 *   mlp-sll    one SLL step of the MLP 784-1024x3 (3 local units, K = 10, batch 128, keep 0.5, lambda 1, Adam)
 *   mlp-bp     the same MLP + a linear classifier, end-to-end backprop, Adam
 *   conv-unit  one conv unit: 64x32x32x64, conv3x3 64->64 + ReLU, pooled 2x2x64 head, CE + BC, Adam
 *   vit-unit   one SLL^{2+} ViT unit: patch embedding + 2 blocks, width 192, 3 heads, 65 tokens, batch 128, Adam
 *   vgg11-step one SLL step of VGG-11 at half width on 28x28x1 (8 local units), batch 128, Adam per unit
 *   vgg11-bp   the same VGG-11 + a linear classifier, end-to-end backprop, Adam
 *   vgg11-bn-step, vgg11-bn-bp  the two above with batch norm between each conv and its ReLU
 * The default cases are all but vit-unit (which takes minutes per measurement: --cases vit-unit).
 *
 * Every measurement (case, engine, threads) runs in a fresh child process so that thread settings start
 * clean: `node dist/bench/speed-step.js ...` for ours, `/usr/bin/python3 bench/torch_ref.py ...` for torch.
 * A child times W warm-up steps (discarded) then S steps; its value is the median over those S steps.
 * R rounds alternate the engines' order (forward, then reversed) and the table gives the median over
 * rounds. The machine is shared and noisy: compare ratios, and look at the spread (JSON `rounds_ms`).
 *
 * Threads: ours on `native` get T BLAS threads (useBackend('native', T); OMP_NUM_THREADS and
 * OPENBLAS_NUM_THREADS = T too); `wasm` is single-threaded in Node and runs at T = 1 only. torch gets
 * torch.set_num_threads(T) and OMP_NUM_THREADS = T, and PyTorch at its best: Debian's PyTorch does its
 * matmuls through the system OpenBLAS (its convolutions through oneDNN, on OpenMP), which reads
 * OPENBLAS_NUM_THREADS, so by default (--torch-blas-threads best) every torch measurement at T > 1 runs twice
 * per round, with OPENBLAS_NUM_THREADS = 1 and = T, and the faster setting's median is torch's time (the
 * table says which: "torch BLAS"). `1` or `same` (= T) pin one setting. Every child also gets
 * OMP_WAIT_POLICY=PASSIVE (--omp-wait-policy): with other jobs on the cores, GNU OpenMP's default
 * spin-waiting made PyTorch at 2 threads 5-10x slower (mlp-sll 180-310 ms against 33-36 ms passive).
 *
 * A measurement that fails, or runs past --timeout seconds (default 120: e.g. conv-unit on an engine
 * without native conv kernels, or wasm, which has no Conv2DBackpropFilter), is skipped for the rest of the
 * run, with the reason printed.
 *
 * Output: a table on stdout (case, threads, native ms, wasm ms, torch ms, native/torch), and the
 * first-step losses of mlp-sll (sanity: CE starts near ln 10 = 2.3, plus the BC term on units 2-3).
 * With --json, stdout has instead one JSON object per line: {case, engine, threads, ms_per_step,
 * rounds_ms, first_loss} per measurement and {case, threads, ratio} (native/torch) per (case, threads);
 * the table then goes to stderr. Progress lines go to stderr.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { benchArgs, fail, intFlag, listFlag } from './args.js';

const CASES = ['mlp-sll', 'mlp-bp', 'conv-unit', 'vit-unit', 'vgg11-step', 'vgg11-bp', 'vgg11-bn-step', 'vgg11-bn-bp'] as const;
const ENGINES = ['native', 'wasm', 'torch'] as const;
type Engine = (typeof ENGINES)[number];

const { values } = benchArgs(() =>
  parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    repeats: { type: 'string', default: '3' },
    steps: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    threads: { type: 'string', default: '1,2' },
    cases: { type: 'string', default: CASES.filter((c) => c !== 'vit-unit').join(',') },
    engines: { type: 'string', default: ENGINES.join(',') },
    timeout: { type: 'string', default: '120' },
    'torch-blas-threads': { type: 'string', default: 'best' },
    'omp-wait-policy': { type: 'string', default: 'PASSIVE' },
    python: { type: 'string', default: '/usr/bin/python3' },
    verbose: { type: 'boolean', default: false },
  },
}),
);

const repeats = intFlag('repeats', values.repeats);
const steps = intFlag('steps', values.steps);
const warmup = intFlag('warmup', values.warmup, 0);
const threadList = values.threads.split(',').map((t) => intFlag('threads', t));
const cases = listFlag('cases', values.cases, CASES);
const engines = listFlag('engines', values.engines, ENGINES);
const timeoutS = Number(values.timeout);
if (!(timeoutS > 0)) fail(`--timeout must be > 0 seconds, got ${values.timeout}`);
const torchBlas = values['torch-blas-threads'];
if (torchBlas !== 'same' && torchBlas !== 'best') intFlag('torch-blas-threads', torchBlas);
/** The OPENBLAS_NUM_THREADS values torch is measured with at T threads. */
const torchBlasSettings = (t: number): number[] =>
  torchBlas === 'best' ? [...new Set([1, t])] : [torchBlas === 'same' ? t : Number(torchBlas)];
const ompWait = values['omp-wait-policy'].toUpperCase();
if (!['PASSIVE', 'ACTIVE'].includes(ompWait)) fail(`--omp-wait-policy must be PASSIVE or ACTIVE, got ${values['omp-wait-policy']}`);
const json = values.json;

const stepScript = fileURLToPath(new URL('./speed-step.js', import.meta.url));
const torchScript = fileURLToPath(new URL('../../bench/torch_ref.py', import.meta.url));

const log = (s: string) => process.stderr.write(`${s}\n`);
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

interface ChildRow {
  steps_ms: number[];
  first_loss: number[];
  backend?: string;
}
type Outcome = { ok: true; row: ChildRow } | { ok: false; reason: string };

/** One measurement in a fresh process; never hangs longer than the timeout. */
function measure(caseName: string, engine: Engine, threads: number, torchBlasThreads = 1): Promise<Outcome> {
  const common = ['--case', caseName, '--threads', String(threads), '--steps', String(steps), '--warmup', String(warmup)];
  const env: NodeJS.ProcessEnv = { ...process.env, OMP_NUM_THREADS: String(threads), OMP_WAIT_POLICY: ompWait };
  let command: string;
  let args: string[];
  if (engine === 'torch') {
    command = values.python;
    args = [torchScript, ...common];
    env.OPENBLAS_NUM_THREADS = String(torchBlasThreads);
  } else {
    command = process.execPath;
    args = [stepScript, ...common, '--engine', engine, '--json'];
    env.OPENBLAS_NUM_THREADS = String(threads);
  }
  return new Promise((resolve) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (values.verbose) process.stderr.write(d);
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutS * 1000);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ ok: false, reason: `could not start ${command}: ${e.message}` });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const lines = stderr.trim().split('\n');
      if (timedOut) {
        const last = lines.filter((l) => /step|warm-up/.test(l)).pop();
        resolve({ ok: false, reason: `timed out after ${timeoutS} s${last ? ` (last progress: ${last.trim()})` : ' before its first step ended'}` });
        return;
      }
      if (code !== 0) {
        const why = lines.filter((l) => l.trim() !== '' && !l.trimStart().startsWith('at ')).slice(-2).join(' | ');
        resolve({ ok: false, reason: `exited with ${code ?? signal}: ${why.slice(0, 400)}` });
        return;
      }
      try {
        const row = JSON.parse(stdout.trim().split('\n').pop()!) as ChildRow;
        if (!Array.isArray(row.steps_ms) || row.steps_ms.length === 0) throw new Error('no steps_ms');
        resolve({ ok: true, row });
      } catch (e) {
        resolve({ ok: false, reason: `unreadable output (${(e as Error).message}): ${stdout.slice(0, 200)}` });
      }
    });
  });
}

/** A measurement's key; torch's carries its OPENBLAS_NUM_THREADS (`torch@B`). */
const key = (c: string, e: Engine, t: number, blas?: number) => `${c}|${e}${blas == null ? '' : `@${blas}`}|${t}`;
const rounds = new Map<string, number[]>();
const firstLoss = new Map<string, number[]>();
const skipped = new Map<string, string>();

/** wasm runs one thread in Node: it is measured at T = 1 only. */
const applies = (e: Engine, t: number) => e !== 'wasm' || t === 1;

log(
  `bench:speed: cases ${cases.join(',')}; engines ${engines.join(',')}; threads ${threadList.join(',')}; ` +
    `${repeats} rounds of ${warmup} warm-up + ${steps} timed steps; timeout ${timeoutS} s per measurement; ` +
    `torch OPENBLAS_NUM_THREADS=${torchBlas === 'best' ? '1 and T, the faster' : torchBlas === 'same' ? 'T' : torchBlas}; OMP_WAIT_POLICY=${ompWait}`,
);
for (const c of cases) {
  for (let r = 0; r < repeats; r++) {
    for (const t of threadList) {
      const order = r % 2 === 0 ? engines : [...engines].reverse();
      for (const e of order) {
        for (const blas of e === 'torch' ? torchBlasSettings(t) : [undefined]) {
          const k = key(c, e, t, blas);
          const label = `${e}${blas == null ? '' : ` (BLAS ${blas})`}`;
          if (!applies(e, t) || skipped.has(k)) continue;
          const started = performance.now();
          const out = await measure(c, e, t, blas);
          const wall = ((performance.now() - started) / 1000).toFixed(1);
          if (!out.ok) {
            skipped.set(k, out.reason);
            log(`round ${r + 1}/${repeats} ${c} ${label} t${t}: SKIPPED (${out.reason}); not retried in later rounds`);
            continue;
          }
          const ms = median(out.row.steps_ms);
          rounds.set(k, [...(rounds.get(k) ?? []), ms]);
          if (!firstLoss.has(k)) firstLoss.set(k, out.row.first_loss);
          const backend = out.row.backend && out.row.backend !== e ? ` (backend ${out.row.backend})` : '';
          log(`round ${r + 1}/${repeats} ${c} ${label}${backend} t${t}: ${ms.toFixed(1)} ms/step (median of ${out.row.steps_ms.length}; ${wall} s wall)`);
        }
      }
    }
  }
}

const medianOf = (k: string): number | null => {
  const xs = rounds.get(k);
  return xs && xs.length > 0 ? median(xs) : null;
};

/** torch's OPENBLAS_NUM_THREADS of its fastest setting at (case, T), or null when none was measured. */
const torchBest = (c: string, t: number): number | null => {
  let best: number | null = null;
  for (const b of torchBlasSettings(t)) {
    const v = medianOf(key(c, 'torch', t, b));
    if (v != null && (best == null || v < medianOf(key(c, 'torch', t, best))!)) best = b;
  }
  return best;
};

/** The median over rounds; torch's is that of its faster OPENBLAS_NUM_THREADS setting. */
const result = (c: string, e: Engine, t: number): number | null => {
  if (e !== 'torch') return medianOf(key(c, e, t));
  const b = torchBest(c, t);
  return b == null ? null : medianOf(key(c, 'torch', t, b));
};

const lines: string[] = [];
const cell = (c: string, e: Engine, t: number) => {
  if (!engines.includes(e)) return '-';
  if (!applies(e, t)) return 'n/a';
  const v = result(c, e, t);
  return v == null ? 'skipped' : v.toFixed(1);
};
const header = ['case', 'threads', 'native ms', 'wasm ms', 'torch ms', 'torch BLAS', 'native/torch'];
const rows: string[][] = [];
for (const c of cases) {
  for (const t of threadList) {
    const n = result(c, 'native', t);
    const p = result(c, 'torch', t);
    const b = engines.includes('torch') ? torchBest(c, t) : null;
    rows.push([c, String(t), cell(c, 'native', t), cell(c, 'wasm', t), cell(c, 'torch', t), b == null ? '-' : String(b), n != null && p != null ? `${(n / p).toFixed(2)}x` : '-']);
  }
}
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const fmt = (r: string[]) => r.map((s, i) => (i === 0 ? s.padEnd(widths[i]) : s.padStart(widths[i]))).join('  ');
lines.push(`ms per training step, median over ${repeats} rounds (each the median of ${steps} steps after ${warmup} warm-up)`);
lines.push(fmt(header));
rows.forEach((r) => lines.push(fmt(r)));
if (engines.includes('torch')) lines.push("torch BLAS: the OPENBLAS_NUM_THREADS of torch's faster setting (see --torch-blas-threads).");
const sanity = [...firstLoss.entries()].filter(([k]) => k.startsWith('mlp-sll|'));
if (sanity.length > 0) {
  lines.push('mlp-sll first-step loss per unit (CE starts near ln 10 = 2.30; units 2-3 add the BC term):');
  for (const [k, v] of sanity) {
    const [, e, t] = k.split('|');
    lines.push(`  ${e.padEnd(6)} t${t}: ${v.map((x) => x.toFixed(4)).join(' ')}`);
  }
}
if (skipped.size > 0) {
  lines.push('skipped:');
  for (const [k, why] of skipped) lines.push(`  ${k.split('|').join(' ').replace(/ (\d+)$/, ' t$1')}: ${why}`);
}
if (engines.includes('wasm') && threadList.some((t) => t !== 1)) lines.push('wasm is single-threaded in Node: n/a at threads > 1.');

if (json) {
  for (const c of cases) {
    for (const t of threadList) {
      for (const e of engines) {
        const v = result(c, e, t);
        if (v == null) continue;
        const blas = e === 'torch' ? torchBest(c, t)! : undefined;
        const k = key(c, e, t, blas);
        const extra = e === 'torch' ? { torch_blas_threads: blas, torch_rounds_ms: Object.fromEntries(torchBlasSettings(t).map((b) => [b, rounds.get(key(c, e, t, b)) ?? null])) } : {};
        console.log(JSON.stringify({ case: c, engine: e, threads: t, ms_per_step: v, rounds_ms: rounds.get(k), first_loss: firstLoss.get(k), ...extra }));
      }
      const n = result(c, 'native', t);
      const p = result(c, 'torch', t);
      if (n != null && p != null) console.log(JSON.stringify({ case: c, threads: t, ratio: n / p }));
    }
  }
  lines.forEach((l) => log(l));
} else {
  lines.forEach((l) => console.log(l));
}
