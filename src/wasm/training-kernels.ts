/**
 * Fixes that make tfjs-backend-wasm 4.22 usable for training (CNNs included), applied by
 * applyWasmTrainingFixes() (idempotent; useBackend('wasm') calls it):
 *
 * - BatchMatMul / _FusedMatMul: the wasm kernels are 10-30x slower with transpose flags than without, and
 *   every MatMul gradient uses those flags; transposing explicitly first (a cheap copy) removes that cliff.
 * - Conv2DBackpropFilter: missing on wasm (so no convolution could be trained). Computed with wasm's own
 *   kernels: x is transposed once to [C, N, H, W] (padded, split into stride phases), and for every filter
 *   tap (kh, kw) a slice gives that tap's input pixels as a [C, rows] matrix, times dy as [rows, CO]: plain
 *   XNNPACK GEMMs over blocks of ~4096 output pixels, no JavaScript loop over the data.
 * - MaxPoolGrad: wasm's kernel routes some gradients to the wrong window element (1-2% of positions with
 *   distinct values, far more with ties). Replaced by one that recomputes each window's first maximum from
 *   the forward input (the element the cpu backend and the forward pass pick) and adds dy there.
 * - AvgPoolGrad: wasm's kernel (like tfjs's cpu one) divides by the full window size, while the forward
 *   pass averages only the window elements inside the input: wrong next to 'same' padding. Replaced by one
 *   that divides by the same count as the forward pass (the native backend does the same).
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

type TensorInfo = tf.TensorInfo;
type KernelArgs = Parameters<tf.KernelFunc>[0];

/** The parts of tfjs-backend-wasm's BackendWasm these kernels use. */
interface WasmBackend {
  makeOutput(shape: number[], dtype: tf.DataType): TensorInfo;
  /** A view of the tensor's memory on the wasm heap; invalid after any allocation (the heap may grow). */
  typedArrayFromHeap(t: TensorInfo): Float32Array | Int32Array | Uint8Array;
  disposeData(dataId: tf.DataId): boolean;
}

const applied = new Set<string>();

/** Applies every wasm fix once (each at most once). Throws when a wasm kernel it builds on is missing. */
export function applyWasmTrainingFixes(): void {
  const fixes: [string, () => void][] = [
    ['matmul', patchWasmTransposedMatMul],
    ['conv2dBackpropFilter', registerConv2DBackpropFilter],
    ['maxPoolGrad', replaceMaxPoolGrad],
    ['avgPoolGrad', replaceAvgPoolGrad],
  ];
  for (const [name, fix] of fixes) {
    if (applied.has(name)) continue;
    fix();
    applied.add(name);
  }
}

function wasmKernel(name: string): tf.KernelConfig {
  const k = tf.getKernel(name, 'wasm');
  if (k == null) throw new Error(`wasm kernel ${name} missing`);
  return k;
}

function replaceKernel(config: tf.KernelConfig): void {
  if (tf.getKernel(config.kernelName, 'wasm') != null) tf.unregisterKernel(config.kernelName, 'wasm');
  tf.registerKernel(config);
}

// ---- Transposed MatMul ---------------------------------------------------------------------------

/**
 * The wasm MatMul kernels are 10-30x slower with transpose flags than without, and every MatMul gradient
 * uses those flags. Transposing explicitly first (a cheap copy) and multiplying plainly removes that cliff
 * for forward and backward passes alike, at the kernel level where every caller benefits.
 */
function patchWasmTransposedMatMul(): void {
  for (const kernelName of ['BatchMatMul', '_FusedMatMul']) {
    const original = wasmKernel(kernelName);
    const transpose = wasmKernel('Transpose');
    const plain: tf.KernelFunc = (args) => {
      const { inputs, backend, attrs } = args;
      const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
      if (!transposeA && !transposeB) return original.kernelFunc(args);
      const swapLast = (t: tf.TensorInfo): tf.TensorInfo => {
        const perm = t.shape.map((_, i) => i);
        [perm[perm.length - 2], perm[perm.length - 1]] = [perm[perm.length - 1], perm[perm.length - 2]];
        return transpose.kernelFunc({ inputs: { x: t }, backend, attrs: { perm } }) as tf.TensorInfo;
      };
      const a = transposeA ? swapLast(inputs.a!) : inputs.a!;
      const b = transposeB ? swapLast(inputs.b!) : inputs.b!;
      const out = original.kernelFunc({
        inputs: { ...inputs, a, b },
        backend,
        attrs: { ...attrs, transposeA: false, transposeB: false },
      });
      const owner = backend as tf.KernelBackend;
      if (transposeA) owner.disposeData(a.dataId);
      if (transposeB) owner.disposeData(b.dataId);
      return out;
    };
    tf.unregisterKernel(kernelName, 'wasm');
    tf.registerKernel({ ...original, kernelFunc: plain });
  }
}

// ---- Conv2DBackpropFilter ------------------------------------------------------------------------

type ConvPad = Parameters<typeof tf.backend_util.computeConv2DInfo>[4];
type RoundingMode = Parameters<typeof tf.backend_util.computeConv2DInfo>[5];

interface BackpropFilterAttrs {
  strides: [number, number] | number;
  pad: ConvPad;
  dataFormat?: 'NHWC' | 'NCHW';
  dimRoundingMode?: RoundingMode;
  filterShape: [number, number, number, number];
}

/** Runs a wasm kernel on `backend`; the result is a new tensor the caller disposes. */
function run(backend: WasmBackend, name: string, inputs: Record<string, TensorInfo>, attrs: Record<string, unknown>): TensorInfo {
  return wasmKernel(name).kernelFunc({
    inputs: inputs as KernelArgs['inputs'],
    backend: backend as unknown as tf.KernelBackend,
    attrs: attrs as KernelArgs['attrs'],
  }) as TensorInfo;
}

/**
 * A slice of `x` (any rank up to 4) read straight from the wasm heap. The wasm Slice kernel reads its
 * whole input out of the heap first (readSync), which costs a full copy of the source per slice.
 */
function sliceFromHeap(backend: WasmBackend, x: TensorInfo, begin: number[], size: number[]): TensorInfo {
  const rank = x.shape.length;
  if (rank > 4 || begin.length !== rank || size.length !== rank) throw new Error('sliceFromHeap: rank <= 4 only');
  const shape = [...new Array(4 - rank).fill(1), ...x.shape];
  const b = [...new Array(4 - rank).fill(0), ...begin];
  const n = [...new Array(4 - rank).fill(1), ...size];
  const out = backend.makeOutput(size.slice(), x.dtype);
  // Views after the allocation (the heap may have grown).
  const xv = backend.typedArrayFromHeap(x);
  const ov = backend.typedArrayFromHeap(out);
  // Merge trailing dims taken whole into one contiguous run.
  let run = n[3];
  let inner = 3;
  while (inner > 0 && n[inner] === shape[inner] && b[inner] === 0) {
    inner--;
    run *= n[inner];
  }
  const s2 = shape[3];
  const s1 = shape[2] * s2;
  const s0 = shape[1] * s1;
  let o = 0;
  const copy = (off: number) => {
    if (run >= 64) {
      ov.set(xv.subarray(off, off + run), o);
    } else {
      for (let j = 0; j < run; j++) ov[o + j] = xv[off + j];
    }
    o += run;
  };
  // Loop over the dims outside the run (dims 0 .. inner - 1).
  const e0 = inner > 0 ? n[0] : 1;
  const e1 = inner > 1 ? n[1] : 1;
  const e2 = inner > 2 ? n[2] : 1;
  for (let i0 = 0; i0 < e0; i0++) {
    for (let i1 = 0; i1 < e1; i1++) {
      for (let i2 = 0; i2 < e2; i2++) copy((b[0] + i0) * s0 + (b[1] + i1) * s1 + (b[2] + i2) * s2 + b[3]);
    }
  }
  return out;
}

/** Rows (output pixels) per GEMM: XNNPACK's GEMM does not block over K, and slows down past a few thousand. */
const FILTER_GRAD_ROWS = 4096;

/**
 * dw[kh, kw, c, co] = sum over (n, oh, ow) of x[n, oh*SH - PT + kh, ow*SW - PL + kw, c] dy[n, oh, ow, co].
 *
 * x is transposed once to [C, N, H, W] and padded; for strides > 1 its rows and columns are also split
 * into their SH x SW phases ([SH, SW, C, N, H/SH, W/SW]), so that every tap's input pixels are a plain
 * (unstrided) slice. Then, per block of images (about FILTER_GRAD_ROWS output pixels) and per tap, a
 * [C, rows] slice times dy's [rows, CO] block is one XNNPACK GEMM, summed into dw in float64.
 */
export function conv2dBackpropFilterWasm(args: KernelArgs): TensorInfo {
  const backend = args.backend as unknown as WasmBackend;
  const { x, dy } = args.inputs as { x: TensorInfo; dy: TensorInfo };
  const attrs = args.attrs as unknown as BackpropFilterAttrs;
  if (attrs.dataFormat === 'NCHW') throw new Error('wasm Conv2DBackpropFilter: only NHWC is supported');
  if (x.dtype !== 'float32' || dy.dtype !== 'float32') throw new Error('wasm Conv2DBackpropFilter: needs float32 x and dy');
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number], attrs.filterShape, attrs.strides, 1, attrs.pad,
    attrs.dimRoundingMode, false, 'channelsLast',
  );
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW, outChannels: CO } = info;
  const { filterHeight: KH, filterWidth: KW, strideHeight: SH, strideWidth: SW } = info;
  const { top: PT, left: PL } = info.padInfo;
  if (!tf.util.arraysEqual(dy.shape, info.outShape)) {
    throw new Error(`wasm Conv2DBackpropFilter: dy has shape [${dy.shape}], expected [${info.outShape}]`);
  }
  if (PT < 0 || PL < 0) throw new Error('wasm Conv2DBackpropFilter: negative padding is not supported');
  const acc = new Float64Array(KH * KW * C * CO);
  const ohw = OH * OW;
  if (N * ohw > 0 && C > 0 && CO > 0) {
    const temps: TensorInfo[] = [];
    const keep = <T extends TensorInfo>(t: T): T => {
      temps.push(t);
      return t;
    };
    try {
      const xT = keep(run(backend, 'Transpose', { x }, { perm: [3, 0, 1, 2] }));
      // Padded to whole stride phases, covering every row and column a tap reads.
      const Hp = Math.ceil(Math.max(H + PT, (OH - 1) * SH + KH) / SH) * SH;
      const Wp = Math.ceil(Math.max(W + PL, (OW - 1) * SW + KW) / SW) * SW;
      let xp = xT;
      if (Hp !== H || Wp !== W) {
        xp = keep(run(backend, 'PadV2', { x: xT }, { paddings: [[0, 0], [0, 0], [PT, Hp - H - PT], [PL, Wp - W - PL]], constantValue: 0 }));
      }
      const Hq = Hp / SH;
      const Wq = Wp / SW;
      let src: TensorInfo;
      if (SH === 1 && SW === 1) {
        src = xp;
      } else {
        const split = keep(run(backend, 'Reshape', { x: xp }, { shape: [C * N, Hq, SH, Wq, SW] }));
        const phases = keep(run(backend, 'Transpose', { x: split }, { perm: [2, 4, 0, 1, 3] }));
        src = keep(run(backend, 'Reshape', { x: phases }, { shape: [SH * SW * C, N, Hq, Wq] }));
      }
      const dy2 = keep(run(backend, 'Reshape', { x: dy }, { shape: [N * ohw, CO] }));
      const imagesPerBlock = Math.max(1, Math.floor(FILTER_GRAD_ROWS / ohw));
      for (let n0 = 0; n0 < N; n0 += imagesPerBlock) {
        const nb = Math.min(imagesPerBlock, N - n0);
        const rows = nb * ohw;
        const dyBlock = nb === N ? dy2 : sliceFromHeap(backend, dy2, [n0 * ohw, 0], [rows, CO]);
        try {
          for (let kh = 0; kh < KH; kh++) {
            for (let kw = 0; kw < KW; kw++) {
              const phase = (kh % SH) * SW + (kw % SW);
              const tap = sliceFromHeap(backend, src, [phase * C, n0, Math.floor(kh / SH), Math.floor(kw / SW)], [C, nb, OH, OW]);
              const tap2 = run(backend, 'Reshape', { x: tap }, { shape: [C, rows] });
              const g = run(backend, 'BatchMatMul', { a: tap2, b: dyBlock }, { transposeA: false, transposeB: false });
              // A view taken after the allocations above (the heap may have grown).
              const gv = backend.typedArrayFromHeap(g);
              const off = (kh * KW + kw) * C * CO;
              for (let i = 0; i < C * CO; i++) acc[off + i] += gv[i];
              for (const t of [tap, tap2, g]) backend.disposeData(t.dataId);
            }
          }
        } finally {
          if (dyBlock !== dy2) backend.disposeData(dyBlock.dataId);
        }
      }
    } finally {
      for (const t of temps) backend.disposeData(t.dataId);
    }
  }
  const out = backend.makeOutput(info.filterShape.slice(), 'float32');
  (backend.typedArrayFromHeap(out) as Float32Array).set(acc);
  return out;
}

function registerConv2DBackpropFilter(): void {
  // Checked up front, so that a missing building block fails when the fixes are applied.
  for (const name of ['Transpose', 'PadV2', 'Reshape', 'BatchMatMul']) wasmKernel(name);
  replaceKernel({ kernelName: 'Conv2DBackpropFilter', backendName: 'wasm', kernelFunc: conv2dBackpropFilterWasm as unknown as tf.KernelFunc });
}

// ---- MaxPoolGrad ---------------------------------------------------------------------------------

interface PoolAttrs {
  filterSize: [number, number] | number;
  strides: [number, number] | number;
  pad: ConvPad;
  dimRoundingMode?: RoundingMode;
}

type Pool2DInfo = ReturnType<typeof tf.backend_util.computePool2DInfo>;

/**
 * The pooling geometry of the forward pass. tfjs's pooling gradients do not pass the forward's
 * dimRoundingMode on; with a numeric pad it is recovered from dy's shape.
 */
export function poolInfoFromGradient(xShape: number[], dyShape: number[], attrs: PoolAttrs, kernel: string): Pool2DInfo {
  const make = (mode: RoundingMode) =>
    tf.backend_util.computePool2DInfo(xShape as [number, number, number, number], attrs.filterSize, attrs.strides, 1, attrs.pad, mode);
  let info = make(attrs.dimRoundingMode);
  if (!tf.util.arraysEqual(dyShape, info.outShape) && attrs.dimRoundingMode == null && typeof attrs.pad === 'number') {
    for (const mode of ['ceil', 'round', 'floor'] as const) {
      const candidate = make(mode);
      if (tf.util.arraysEqual(dyShape, candidate.outShape)) {
        info = candidate;
        break;
      }
    }
  }
  if (!tf.util.arraysEqual(dyShape, info.outShape)) {
    throw new Error(`${kernel}: dy has shape [${dyShape}], expected [${info.outShape}]`);
  }
  return info;
}

/**
 * dx of max pooling: each window's dy goes to the window's first maximum (row-major window order, strict
 * comparison: the element tfjs's forward pass and cpu backend pick), recomputed from the forward input.
 * Windows whose elements are all -Infinity or NaN pass no gradient. Loops over the wasm heap arrays,
 * vectorised over the channels.
 */
export function maxPoolGradWasm(args: KernelArgs): TensorInfo {
  const backend = args.backend as unknown as WasmBackend;
  const { dy, input } = args.inputs as { dy: TensorInfo; input: TensorInfo };
  const info = poolInfoFromGradient(input.shape, dy.shape, args.attrs as unknown as PoolAttrs, 'MaxPoolGrad');
  const out = backend.makeOutput(input.shape.slice(), 'float32');
  // Views after the allocation.
  const dx = backend.typedArrayFromHeap(out) as Float32Array;
  const xv = backend.typedArrayFromHeap(input);
  const dyv = backend.typedArrayFromHeap(dy);
  dx.fill(0);
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW } = info;
  const { filterHeight: KH, filterWidth: KW, strideHeight: SH, strideWidth: SW } = info;
  const { top: PT, left: PL } = info.padInfo;
  const best = new Float64Array(C);
  const where = new Int32Array(C);
  for (let n = 0; n < N; n++) {
    const xn = n * H * W * C;
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        best.fill(-Infinity);
        where.fill(-1);
        for (let kh = 0; kh < KH; kh++) {
          const ih = oh * SH - PT + kh;
          if (ih < 0 || ih >= H) continue;
          for (let kw = 0; kw < KW; kw++) {
            const iw = ow * SW - PL + kw;
            if (iw < 0 || iw >= W) continue;
            const base = xn + (ih * W + iw) * C;
            for (let c = 0; c < C; c++) {
              const v = xv[base + c];
              if (v > best[c]) {
                best[c] = v;
                where[c] = base + c;
              }
            }
          }
        }
        const d = ((n * OH + oh) * OW + ow) * C;
        for (let c = 0; c < C; c++) if (where[c] >= 0) dx[where[c]] += dyv[d + c];
      }
    }
  }
  return out;
}

function replaceMaxPoolGrad(): void {
  replaceKernel({ kernelName: 'MaxPoolGrad', backendName: 'wasm', kernelFunc: maxPoolGradWasm as unknown as tf.KernelFunc });
}

// ---- AvgPoolGrad ---------------------------------------------------------------------------------

/**
 * dx of average pooling: each window's dy divided by the number of its elements inside the input (the
 * divisor of the forward pass) and added to each of them.
 */
export function avgPoolGradWasm(args: KernelArgs): TensorInfo {
  const backend = args.backend as unknown as WasmBackend;
  const { dy, input } = args.inputs as { dy: TensorInfo; input: TensorInfo };
  const info = poolInfoFromGradient(input.shape, dy.shape, args.attrs as unknown as PoolAttrs, 'AvgPoolGrad');
  const out = backend.makeOutput(input.shape.slice(), 'float32');
  const dx = backend.typedArrayFromHeap(out) as Float32Array;
  const dyv = backend.typedArrayFromHeap(dy);
  dx.fill(0);
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW } = info;
  const { filterHeight: KH, filterWidth: KW, strideHeight: SH, strideWidth: SW } = info;
  const { top: PT, left: PL } = info.padInfo;
  const g = new Float32Array(C);
  for (let n = 0; n < N; n++) {
    const xn = n * H * W * C;
    for (let oh = 0; oh < OH; oh++) {
      const h0 = Math.max(0, oh * SH - PT);
      const h1 = Math.min(H, oh * SH - PT + KH);
      for (let ow = 0; ow < OW; ow++) {
        const w0 = Math.max(0, ow * SW - PL);
        const w1 = Math.min(W, ow * SW - PL + KW);
        const count = Math.max(0, h1 - h0) * Math.max(0, w1 - w0);
        if (count === 0) continue;
        const d = ((n * OH + oh) * OW + ow) * C;
        for (let c = 0; c < C; c++) g[c] = dyv[d + c] / count;
        for (let ih = h0; ih < h1; ih++) {
          for (let iw = w0; iw < w1; iw++) {
            const base = xn + (ih * W + iw) * C;
            for (let c = 0; c < C; c++) dx[base + c] += g[c];
          }
        }
      }
    }
  }
  return out;
}

function replaceAvgPoolGrad(): void {
  replaceKernel({ kernelName: 'AvgPoolGrad', backendName: 'wasm', kernelFunc: avgPoolGradWasm as unknown as tf.KernelFunc });
}
