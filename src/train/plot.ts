/** A small loss-curve picture (PNG), drawn with our own pixels: no plotting dependency. */
import { encodePng } from "../data/image.js";

export function lossCurvePng(points: ReadonlyArray<{ step: number; loss: number }>, width = 480, height = 240): Uint8Array {
  const data = new Uint8Array(width * height * 3).fill(255);
  const m = 24;
  const put = (x: number, y: number, rgb: [number, number, number]): void => {
    if (x < 0 || y < 0 || x >= width || y >= height) return;
    const i = (Math.round(y) * width + Math.round(x)) * 3;
    data[i] = rgb[0];
    data[i + 1] = rgb[1];
    data[i + 2] = rgb[2];
  };
  for (let x = m; x < width - m; x++) put(x, height - m, [0, 0, 0]);
  for (let y = m; y < height - m; y++) put(m, y, [0, 0, 0]);
  const finite = points.filter((p) => Number.isFinite(p.loss));
  if (finite.length > 0) {
    const s0 = finite[0]!.step;
    const s1 = Math.max(finite[finite.length - 1]!.step, s0 + 1);
    const lo = Math.min(0, ...finite.map((p) => p.loss));
    const hi = Math.max(...finite.map((p) => p.loss), lo + 1e-9);
    const X = (s: number) => m + ((s - s0) / (s1 - s0)) * (width - 2 * m);
    const Y = (l: number) => height - m - ((l - lo) / (hi - lo)) * (height - 2 * m);
    for (let i = 1; i < finite.length; i++) {
      const a = finite[i - 1]!;
      const b = finite[i]!;
      const n = Math.max(2, Math.ceil(Math.abs(X(b.step) - X(a.step)) + Math.abs(Y(b.loss) - Y(a.loss))));
      for (let k = 0; k <= n; k++) put(X(a.step) + ((X(b.step) - X(a.step)) * k) / n, Y(a.loss) + ((Y(b.loss) - Y(a.loss)) * k) / n, [30, 90, 200]);
    }
    if (finite.length === 1) put(X(s0), Y(finite[0]!.loss), [30, 90, 200]);
  }
  return encodePng({ width, height, data });
}
