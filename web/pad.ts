/**
 * The drawing pad: a canvas to draw a digit on with the mouse, pen or a finger, read back as MNIST draws
 * its digits (LeCun et al.): white on black, the strokes' bounding box scaled to fit 20x20 pixels, placed
 * in a 28x28 image with its centre of mass at the centre. Pixels are raw 0..255, as the data set's.
 */
const SIZE = 28;
const BOX = 20;

/** A canvas to draw on; `onStroke` runs after every stroke. */
export class DrawingPad {
  private drawing = false;
  private readonly ctx: CanvasRenderingContext2D;

  constructor(
    readonly canvas: HTMLCanvasElement,
    private readonly onStroke: () => void,
  ) {
    this.ctx = canvas.getContext('2d', { willReadFrequently: true })!;
    this.clear();
    canvas.style.touchAction = 'none';
    canvas.addEventListener('pointerdown', (e) => {
      this.drawing = true;
      canvas.setPointerCapture(e.pointerId);
      const [x, y] = this.at(e);
      this.ctx.beginPath();
      this.ctx.moveTo(x, y);
      this.ctx.lineTo(x, y);
      this.ctx.stroke();
    });
    canvas.addEventListener('pointermove', (e) => {
      if (!this.drawing) return;
      const [x, y] = this.at(e);
      this.ctx.lineTo(x, y);
      this.ctx.stroke();
    });
    const end = () => {
      if (!this.drawing) return;
      this.drawing = false;
      this.onStroke();
    };
    canvas.addEventListener('pointerup', end);
    canvas.addEventListener('pointercancel', end);
  }

  clear(): void {
    const { ctx, canvas } = this;
    ctx.fillStyle = 'black';
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    Object.assign(ctx, { strokeStyle: 'white', lineWidth: canvas.width / 12, lineCap: 'round', lineJoin: 'round' });
  }

  private at(e: PointerEvent): [number, number] {
    const r = this.canvas.getBoundingClientRect();
    return [((e.clientX - r.left) * this.canvas.width) / r.width, ((e.clientY - r.top) * this.canvas.height) / r.height];
  }

  /** The drawing as a 28x28 MNIST image (784 raw pixels, row-major), or null while the pad is empty. */
  image(): Uint8Array | null {
    const { canvas } = this;
    const src = this.ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let [x0, y0, x1, y1] = [canvas.width, canvas.height, -1, -1];
    for (let y = 0; y < canvas.height; y++) {
      for (let x = 0; x < canvas.width; x++) {
        if (src[4 * (y * canvas.width + x)] > 32) [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
      }
    }
    if (x1 < 0) return null;
    const [w, h] = [x1 - x0 + 1, y1 - y0 + 1];
    const scale = BOX / Math.max(w, h);
    const small = document.createElement('canvas');
    small.width = small.height = SIZE;
    const ctx = small.getContext('2d', { willReadFrequently: true })!;
    ctx.imageSmoothingQuality = 'high';
    const draw = (dx: number, dy: number) => {
      ctx.fillStyle = 'black';
      ctx.fillRect(0, 0, SIZE, SIZE);
      ctx.drawImage(canvas, x0, y0, w, h, dx + (SIZE - w * scale) / 2, dy + (SIZE - h * scale) / 2, w * scale, h * scale);
      const rgba = ctx.getImageData(0, 0, SIZE, SIZE).data;
      return Uint8Array.from({ length: SIZE * SIZE }, (_, i) => rgba[4 * i]);
    };
    const centred = draw(0, 0);
    let [mass, mx, my] = [0, 0, 0];
    centred.forEach((v, i) => {
      mass += v;
      mx += v * (i % SIZE);
      my += v * Math.floor(i / SIZE);
    });
    return draw(Math.round((SIZE - 1) / 2 - mx / mass), Math.round((SIZE - 1) / 2 - my / mass));
  }
}

/** Draws 28x28 raw pixels into `canvas` (scaled up), to show what the model sees. */
export function showImage(canvas: HTMLCanvasElement, pixels: Uint8Array | null): void {
  const ctx = canvas.getContext('2d')!;
  const img = ctx.createImageData(SIZE, SIZE);
  for (let i = 0; i < SIZE * SIZE; i++) {
    const v = pixels ? pixels[i] : 0;
    img.data.set([v, v, v, 255], 4 * i);
  }
  const tmp = document.createElement('canvas');
  tmp.width = tmp.height = SIZE;
  tmp.getContext('2d')!.putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tmp, 0, 0, canvas.width, canvas.height);
}
