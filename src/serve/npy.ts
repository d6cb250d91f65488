/**
 * NumPy .npy reader for the uint8 RGB images VLA-0's clients send (np.save of an
 * (H, W, 3) uint8 array). Format: "\x93NUMPY", major, minor, header length (u16 in
 * v1, u32 in v2/v3), a Python-dict header {'descr': '|u1', 'fortran_order': False,
 * 'shape': (H, W, 3)}, then the raw C-order data.
 */
import type { RgbImage } from "../data/episode.js";
import { VlaError } from "../errors.js";

export function parseNpyImage(bytes: Uint8Array, what: string): RgbImage {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < 10 || buf[0] !== 0x93 || buf.toString("latin1", 1, 6) !== "NUMPY") {
    throw new VlaError("DATA_INVALID", `${what} is not a .npy array (bad magic)`, "send np.save() output, base64-encoded");
  }
  const major = buf[6] as number;
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  if (start + headerLen > buf.length) throw new VlaError("DATA_INVALID", `${what}: .npy header runs past the end`);
  const header = buf.toString("latin1", start, start + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr !== "|u1" && descr !== "<u1" && descr !== "u1") throw new VlaError("DATA_INVALID", `${what}: dtype ${descr ?? "?"} is not uint8`, "send images as uint8 (np.uint8)");
  if (fortran !== "False") throw new VlaError("DATA_INVALID", `${what}: Fortran-ordered arrays are not supported`, "use np.ascontiguousarray");
  const shape = (shapeText ?? "").split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  if (shape.length !== 3 || shape[2] !== 3 || !shape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new VlaError("DATA_INVALID", `${what}: shape (${shape.join(", ")}) is not (H, W, 3)`, "send one RGB image per entry");
  }
  const [h, w] = shape as [number, number, number];
  const dataStart = start + headerLen;
  if (buf.length - dataStart !== h * w * 3) throw new VlaError("DATA_INVALID", `${what}: ${buf.length - dataStart} data bytes for shape (${h}, ${w}, 3)`);
  return { width: w, height: h, data: new Uint8Array(buf.subarray(dataStart)) };
}

/** np.save of an (H, W, 3) uint8 image, version 1.0 (for clients and tests). */
export function encodeNpyImage(img: RgbImage): Uint8Array {
  let header = `{'descr': '|u1', 'fortran_order': False, 'shape': (${img.height}, ${img.width}, 3), }`;
  const total = 10 + header.length + 1;
  header += " ".repeat((64 - (total % 64)) % 64) + "\n";
  const out = Buffer.alloc(10 + header.length + img.data.length);
  out[0] = 0x93;
  out.write("NUMPY", 1, "latin1");
  out[6] = 1;
  out[7] = 0;
  out.writeUInt16LE(header.length, 8);
  out.write(header, 10, "latin1");
  out.set(img.data, 10 + header.length);
  return out;
}
