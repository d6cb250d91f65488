/**
 * Qwen2.5-VL's 3D M-RoPE position ids for a prompt (transformers' get_rope_index, for
 * images): text tokens advance all three sections together; an image's tokens (after
 * the 2x2 merge, gh/2 x gw/2 of them) take temporal 0 (+ offset), height i and width j
 * (+ offset), where the offset is one past the largest position so far; text after an
 * image continues one past the image's largest position.
 */
import { VlaError } from "../errors.js";

export interface ImageSpan {
  /** Index of the first image-pad token in the sequence. */
  start: number;
  /** Grid before the merge (as image_grid_thw). */
  grid: { t: number; h: number; w: number };
}

/** positions (3, N): rows temporal, height, width. */
export function ropeIndex(length: number, images: ReadonlyArray<ImageSpan>, mergeSize = 2): Int32Array {
  const out = new Int32Array(3 * length);
  const sorted = [...images].sort((a, b) => a.start - b.start);
  let next = 0; // next text position
  let i = 0;
  for (const img of sorted) {
    if (img.start < i) throw new VlaError("DATA_INVALID", `image spans overlap at token ${img.start}`);
    for (; i < img.start; i++, next++) for (let s = 0; s < 3; s++) out[s * length + i] = next;
    const gh = img.grid.h / mergeSize;
    const gw = img.grid.w / mergeSize;
    const n = img.grid.t * gh * gw;
    if (i + n > length) throw new VlaError("DATA_INVALID", `image at token ${img.start} needs ${n} tokens but the sequence ends at ${length}`);
    let maxPos = next;
    for (let t = 0; t < img.grid.t; t++)
      for (let h = 0; h < gh; h++)
        for (let w = 0; w < gw; w++, i++) {
          // images: second_per_grid_t = 0, so the temporal index is 0 for every frame group
          out[i] = next;
          out[length + i] = next + h;
          out[2 * length + i] = next + w;
          maxPos = Math.max(maxPos, next + h, next + w);
        }
    next = maxPos + 1;
  }
  for (; i < length; i++, next++) for (let s = 0; s < 3; s++) out[s * length + i] = next;
  return out;
}
