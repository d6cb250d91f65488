/**
 * NumPy .npy reader for the uint8 RGB images VLA-0's clients send (np.save of an
 * (H, W, 3) uint8 array). Format: "\x93NUMPY", major, minor (1.0, 2.0 or 3.0), header
 * length (u16 in v1, u32 in v2/v3), a Python-dict header {'descr': '|u1',
 * 'fortran_order': False, 'shape': (H, W, 3)} ending in "\n", then the raw C-order data.
 * Everything is checked before any pixel is copied: the version, the header's length
 * (numpy's own 10000-byte limit), its keys, the shape, the data length.
 */
import type { RgbImage } from "../data/episode.js";
import { VlaError } from "../errors.js";

/** numpy.lib.format's default max_header_size. */
const MAX_HEADER = 10_000;

export function parseNpyImage(bytes: Uint8Array, what: string): RgbImage {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bad = (message: string, hint = "send np.save() of an (H, W, 3) uint8 array, base64-encoded"): VlaError => new VlaError("DATA_INVALID", `${what}: ${message}`, hint);
  if (buf.length < 10 || buf[0] !== 0x93 || buf.toString("latin1", 1, 6) !== "NUMPY") throw new VlaError("DATA_INVALID", `${what} is not a .npy array (bad magic)`, "send np.save() output, base64-encoded");
  const major = buf[6] as number;
  const minor = buf[7] as number;
  if (major < 1 || major > 3 || minor !== 0) throw bad(`.npy format version ${major}.${minor} is not one numpy writes (1.0, 2.0 or 3.0)`);
  const start = major === 1 ? 10 : 12;
  if (buf.length < start) throw bad(".npy header length runs past the end");
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  if (headerLen > MAX_HEADER) throw bad(`.npy header of ${headerLen} bytes is over numpy's ${MAX_HEADER}-byte limit`);
  if (start + headerLen > buf.length) throw bad(".npy header runs past the end");
  const header = buf.toString(major === 3 ? "utf8" : "latin1", start, start + headerLen);
  if (!header.endsWith("\n")) throw bad(".npy header does not end with a newline");
  const dict = /^\s*\{(.*)\}\s*$/s.exec(header)?.[1];
  if (dict === undefined) throw bad(".npy header is not a dictionary");
  const descr = /'descr':\s*'([^']+)'/.exec(dict)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(dict)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(dict)?.[1];
  if (descr !== "|u1" && descr !== "<u1" && descr !== "u1") throw bad(`dtype ${descr ?? "?"} is not uint8`, "send images as uint8 (np.uint8)");
  if (fortran !== "False") throw bad(fortran === "True" ? "Fortran-ordered arrays are not supported" : ".npy header has no fortran_order", "use np.ascontiguousarray");
  const dims = (shapeText ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  const shape = dims.map((d) => (/^\d{1,9}$/.test(d) ? Number(d) : NaN));
  if (shape.length !== 3 || shape[2] !== 3 || !shape.every((d) => Number.isInteger(d) && d > 0)) throw bad(`shape (${dims.join(", ")}) is not (H, W, 3)`, "send one RGB image per entry");
  const [h, w] = shape as [number, number, number];
  const dataStart = start + headerLen;
  if (buf.length - dataStart !== h * w * 3) throw bad(`${buf.length - dataStart} data bytes for shape (${h}, ${w}, 3), expected ${h * w * 3}`);
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
