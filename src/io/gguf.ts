/**
 * GGUF (llama.cpp's model file format, version 3) reader and writer.
 *
 * Layout: "GGUF" magic, u32 version, u64 tensor count, u64 metadata count,
 * metadata key/value pairs, tensor infos (name, dims innermost-first, type,
 * offset into the data section), padding to `general.alignment` (32), data.
 *
 * Shapes in this API are outermost-first like Hugging Face/PyTorch (a Linear
 * weight is (out, in)); the file stores them innermost-first (ne[0] = in).
 */
import fs from "node:fs";
import path from "node:path";
import { VlaError } from "../errors.js";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "./half.js";

export const GGUF_TYPE = { u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12 } as const;
export type GgufScalarType = Exclude<keyof typeof GGUF_TYPE, "array">;

export type GgufValue =
  | { type: GgufScalarType; value: number | bigint | boolean | string }
  | { type: "array"; itemType: GgufScalarType; value: Array<number | bigint | boolean | string> };

/** The ggml tensor types this module reads and writes (ggml.h's enum ggml_type). */
export const GGML_TYPE = { f32: 0, f16: 1, bf16: 30 } as const;
export type GgmlType = keyof typeof GGML_TYPE;
const GGML_TYPE_BYTES: Record<GgmlType, number> = { f32: 4, f16: 2, bf16: 2 };

export interface GgufTensorIn {
  name: string;
  /** Outermost-first, e.g. (out, in). */
  shape: number[];
  type: GgmlType;
  /** Row-major values, length = product(shape); rounded to `type` (nearest even) on write. */
  data: Float32Array;
}

export interface GgufTensorInfo {
  name: string;
  shape: number[];
  type: GgmlType;
  /** Absolute byte offset of the data in the file. */
  offset: number;
  bytes: number;
}

export interface GgufFile {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: GgufTensorInfo[];
  alignment: number;
}

const ALIGN = 32;

class Writer {
  chunks: Buffer[] = [];
  size = 0;
  push(b: Buffer): void {
    this.chunks.push(b);
    this.size += b.length;
  }
  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }
  u64(v: number | bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }
  str(s: string): void {
    const b = Buffer.from(s, "utf8");
    this.u64(b.length);
    this.push(b);
  }
  scalar(type: GgufScalarType, v: number | bigint | boolean | string): void {
    const b = Buffer.alloc(8);
    switch (type) {
      case "u8": b.writeUInt8(Number(v)); return this.push(b.subarray(0, 1));
      case "i8": b.writeInt8(Number(v)); return this.push(b.subarray(0, 1));
      case "u16": b.writeUInt16LE(Number(v)); return this.push(b.subarray(0, 2));
      case "i16": b.writeInt16LE(Number(v)); return this.push(b.subarray(0, 2));
      case "u32": b.writeUInt32LE(Number(v)); return this.push(b.subarray(0, 4));
      case "i32": b.writeInt32LE(Number(v)); return this.push(b.subarray(0, 4));
      case "f32": b.writeFloatLE(Number(v)); return this.push(b.subarray(0, 4));
      case "bool": b.writeUInt8(v ? 1 : 0); return this.push(b.subarray(0, 1));
      case "u64": b.writeBigUInt64LE(BigInt(v)); return this.push(b);
      case "i64": b.writeBigInt64LE(BigInt(v)); return this.push(b);
      case "f64": b.writeDoubleLE(Number(v)); return this.push(b);
      case "string": return this.str(String(v));
    }
  }
}

function product(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Values rounded to f16 or bf16 (nearest even); Uint16Array is host order, little-endian on every platform we build for. */
function halfBody(data: Float32Array, type: "f16" | "bf16"): Buffer {
  const body = Buffer.alloc(data.length * 2);
  const out = new Uint16Array(body.buffer, body.byteOffset, data.length);
  const round = type === "f16" ? f32ToF16 : f32ToBf16;
  for (let i = 0; i < data.length; i++) out[i] = round(data[i] as number);
  return body;
}

/** Write a GGUF file atomically (temp file, then rename). */
export function writeGguf(file: string, metadata: Array<[string, GgufValue]>, tensors: GgufTensorIn[]): void {
  const w = new Writer();
  w.push(Buffer.from("GGUF", "latin1"));
  w.u32(3);
  w.u64(tensors.length);
  w.u64(metadata.length);
  for (const [key, v] of metadata) {
    w.str(key);
    w.u32(GGUF_TYPE[v.type]);
    if (v.type === "array") {
      w.u32(GGUF_TYPE[v.itemType]);
      w.u64(v.value.length);
      for (const item of v.value) w.scalar(v.itemType, item);
    } else {
      w.scalar(v.type, v.value);
    }
  }
  let offset = 0;
  const bodies: Buffer[] = [];
  for (const t of tensors) {
    const n = product(t.shape);
    if (t.data.length !== n) throw new VlaError("FILE_INVALID", `tensor ${t.name}: shape [${t.shape}] needs ${n} values, got ${t.data.length}`);
    w.str(t.name);
    w.u32(t.shape.length);
    for (const d of [...t.shape].reverse()) w.u64(d);
    w.u32(GGML_TYPE[t.type]);
    w.u64(offset);
    const body = t.type === "f32" ? Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength) : halfBody(t.data, t.type);
    const padded = Math.ceil(body.length / ALIGN) * ALIGN;
    bodies.push(body, Buffer.alloc(padded - body.length));
    offset += padded;
  }
  const headerPad = Math.ceil(w.size / ALIGN) * ALIGN - w.size;
  w.push(Buffer.alloc(headerPad));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, "w");
  try {
    for (const c of [...w.chunks, ...bodies]) fs.writeSync(fd, c);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}

class Reader {
  pos = 0;
  constructor(
    readonly buf: Buffer,
    readonly file: string,
  ) {}
  need(n: number): void {
    if (this.pos + n > this.buf.length) throw new VlaError("FILE_INVALID", `${this.file}: truncated GGUF (wanted ${n} bytes at offset ${this.pos}, file has ${this.buf.length})`, "re-export the file");
  }
  u32(): number {
    this.need(4);
    const v = this.buf.readUInt32LE(this.pos);
    this.pos += 4;
    return v;
  }
  u64(): number {
    this.need(8);
    const v = this.buf.readBigUInt64LE(this.pos);
    this.pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new VlaError("FILE_INVALID", `${this.file}: u64 ${v} too large at offset ${this.pos - 8}`);
    return Number(v);
  }
  str(): string {
    const n = this.u64();
    this.need(n);
    const s = this.buf.toString("utf8", this.pos, this.pos + n);
    this.pos += n;
    return s;
  }
  scalar(type: GgufScalarType): number | bigint | boolean | string {
    const sizes: Record<GgufScalarType, number> = { u8: 1, i8: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, bool: 1, u64: 8, i64: 8, f64: 8, string: 0 };
    if (type === "string") return this.str();
    this.need(sizes[type]);
    const b = this.buf;
    const p = this.pos;
    this.pos += sizes[type];
    switch (type) {
      case "u8": return b.readUInt8(p);
      case "i8": return b.readInt8(p);
      case "u16": return b.readUInt16LE(p);
      case "i16": return b.readInt16LE(p);
      case "u32": return b.readUInt32LE(p);
      case "i32": return b.readInt32LE(p);
      case "f32": return b.readFloatLE(p);
      case "bool": return b.readUInt8(p) !== 0;
      case "u64": return b.readBigUInt64LE(p);
      case "i64": return b.readBigInt64LE(p);
      case "f64": return b.readDoubleLE(p);
    }
  }
}

function typeName(code: number, file: string): GgufScalarType | "array" {
  const e = Object.entries(GGUF_TYPE).find(([, c]) => c === code);
  if (!e) throw new VlaError("FILE_INVALID", `${file}: unknown GGUF value type ${code}`);
  return e[0] as GgufScalarType | "array";
}

/** Read a GGUF file's header and tensor table (tensor data stays in the buffer). */
export function readGguf(file: string): GgufFile & { buffer: Buffer } {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch {
    throw new VlaError("FILE_NOT_FOUND", `GGUF file not found: ${file}`);
  }
  const r = new Reader(buf, file);
  r.need(4);
  if (buf.toString("latin1", 0, 4) !== "GGUF") throw new VlaError("FILE_INVALID", `${file} is not a GGUF file (bad magic)`);
  r.pos = 4;
  const version = r.u32();
  if (version !== 3 && version !== 2) throw new VlaError("FILE_INVALID", `${file}: unsupported GGUF version ${version}`, "versions 2 and 3 are supported");
  const nTensors = r.u64();
  const nKv = r.u64();
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < nKv; i++) {
    const key = r.str();
    const t = typeName(r.u32(), file);
    if (t === "array") {
      const it = typeName(r.u32(), file);
      if (it === "array") throw new VlaError("FILE_INVALID", `${file}: nested arrays in ${key} are not supported`);
      const n = r.u64();
      const value: Array<number | bigint | boolean | string> = [];
      for (let k = 0; k < n; k++) value.push(r.scalar(it));
      metadata.set(key, { type: "array", itemType: it, value });
    } else {
      metadata.set(key, { type: t, value: r.scalar(t) });
    }
  }
  const alignV = metadata.get("general.alignment");
  const alignment = alignV && alignV.type !== "array" ? Number(alignV.value) : ALIGN;
  const infos: Array<Omit<GgufTensorInfo, "offset" | "bytes"> & { rel: number }> = [];
  for (let i = 0; i < nTensors; i++) {
    const name = r.str();
    const nd = r.u32();
    const ne: number[] = [];
    for (let d = 0; d < nd; d++) ne.push(r.u64());
    const code = r.u32();
    const type = (Object.keys(GGML_TYPE) as GgmlType[]).find((k) => GGML_TYPE[k] === code);
    if (!type) throw new VlaError("FILE_INVALID", `${file}: tensor ${name} has ggml type ${code}; only f32 (0), f16 (1) and bf16 (30) are supported`, "re-export it unquantized");
    infos.push({ name, shape: ne.reverse(), type, rel: r.u64() });
  }
  const dataStart = Math.ceil(r.pos / alignment) * alignment;
  const tensors = infos.map((t) => {
    const bytes = product(t.shape) * GGML_TYPE_BYTES[t.type];
    const offset = dataStart + t.rel;
    if (offset + bytes > buf.length) throw new VlaError("FILE_INVALID", `${file}: tensor ${t.name} runs past the end of the file (truncated?)`);
    return { name: t.name, shape: t.shape, type: t.type, offset, bytes };
  });
  return { version, metadata, tensors, alignment, buffer: buf };
}

/** A tensor's values as f32. */
export function ggufTensorData(f: GgufFile & { buffer: Buffer }, name: string): Float32Array {
  const t = f.tensors.find((x) => x.name === name);
  if (!t) throw new VlaError("FILE_INVALID", `GGUF has no tensor '${name}'`);
  const n = product(t.shape);
  const out = new Float32Array(n);
  if (t.type === "f32") {
    for (let i = 0; i < n; i++) out[i] = f.buffer.readFloatLE(t.offset + 4 * i);
  } else {
    const widen = t.type === "f16" ? f16ToF32 : bf16ToF32;
    for (let i = 0; i < n; i++) out[i] = widen(f.buffer.readUInt16LE(t.offset + 2 * i));
  }
  return out;
}
