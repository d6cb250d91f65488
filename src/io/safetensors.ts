/**
 * safetensors reader and writer (the Hugging Face weight format): an 8-byte
 * little-endian header length, a JSON header {name: {dtype, shape,
 * data_offsets: [begin, end]}, "__metadata__"?: {...}}, then the raw data.
 * F32, F16 and BF16 are read into f32; writing is atomic.
 */
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { VlaError } from "../errors.js";
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "./half.js";

export type SafetensorsDtype = "F32" | "F16" | "BF16";
const BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2 };

const EntrySchema = z.object({ dtype: z.string(), shape: z.array(z.number().int().min(0)), data_offsets: z.tuple([z.number().int().min(0), z.number().int().min(0)]) });

export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** Byte range inside the data section. */
  begin: number;
  end: number;
}

export interface SafetensorsFile {
  file: string;
  metadata: Record<string, string>;
  tensors: Map<string, SafetensorsEntry>;
  dataStart: number;
  buffer: Buffer;
}

export interface SafetensorsHeader {
  file: string;
  metadata: Record<string, string>;
  tensors: Map<string, SafetensorsEntry>;
  /** Byte offset of the data section in the file. */
  dataStart: number;
  fileSize: number;
}

/** Parse and validate the header only (reads 8 + header-length bytes, not the data). */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  let fd: number;
  try {
    fd = fs.openSync(file, "r");
  } catch {
    throw new VlaError("FILE_NOT_FOUND", `safetensors file not found: ${file}`);
  }
  try {
    const fileSize = fs.fstatSync(fd).size;
    if (fileSize < 8) throw new VlaError("FILE_INVALID", `${file}: too short for a safetensors header (${fileSize} bytes)`);
    const lenBuf = Buffer.alloc(8);
    fs.readSync(fd, lenBuf, 0, 8, 0);
    const n = Number(lenBuf.readBigUInt64LE(0));
    if (8 + n > fileSize) throw new VlaError("FILE_INVALID", `${file}: header of ${n} bytes runs past the end of the file (truncated?)`);
    const hdr = Buffer.alloc(n);
    fs.readSync(fd, hdr, 0, n, 8);
    return parseHeader(file, hdr.toString("utf8"), 8 + n, fileSize);
  } finally {
    fs.closeSync(fd);
  }
}

function parseHeader(file: string, text: string, dataStart: number, fileSize: number): SafetensorsHeader {
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw new VlaError("FILE_INVALID", `${file}: header is not JSON (${(e as Error).message})`);
  }
  if (typeof header !== "object" || header === null) throw new VlaError("FILE_INVALID", `${file}: header is not an object`);
  const tensors = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  const dataLen = fileSize - dataStart;
  for (const [name, raw] of Object.entries(header)) {
    if (name === "__metadata__") {
      metadata = z.record(z.string(), z.string()).parse(raw);
      continue;
    }
    const e = EntrySchema.safeParse(raw);
    if (!e.success) throw new VlaError("FILE_INVALID", `${file}: tensor ${name} has a malformed header entry`);
    const dtype = e.data.dtype;
    if (dtype !== "F32" && dtype !== "F16" && dtype !== "BF16") throw new VlaError("FILE_INVALID", `${file}: tensor ${name} has dtype ${dtype}; supported: F32, F16, BF16`);
    const [begin, end] = e.data.data_offsets;
    const count = e.data.shape.reduce((a, b) => a * b, 1);
    if (end - begin !== count * BYTES[dtype]) throw new VlaError("FILE_INVALID", `${file}: tensor ${name} shape [${e.data.shape}] does not match its ${end - begin} bytes`);
    if (end > dataLen) throw new VlaError("FILE_INVALID", `${file}: tensor ${name} runs past the end of the file (truncated?)`);
    tensors.set(name, { name, dtype, shape: e.data.shape, begin, end });
  }
  return { file, metadata, tensors, dataStart, fileSize };
}

export function readSafetensors(file: string): SafetensorsFile {
  const h = readSafetensorsHeader(file);
  const buffer = fs.readFileSync(file);
  return { file, metadata: h.metadata, tensors: h.tensors, dataStart: h.dataStart, buffer };
}

/** A tensor's values as f32 (row-major). */
export function safetensorsData(f: SafetensorsFile, name: string): Float32Array {
  const e = f.tensors.get(name);
  if (!e) throw new VlaError("FILE_INVALID", `${f.file} has no tensor '${name}'`, "check the model's architecture and tensor names");
  const count = e.shape.reduce((a, b) => a * b, 1);
  const base = f.dataStart + e.begin;
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    if (e.dtype === "F32") out[i] = f.buffer.readFloatLE(base + 4 * i);
    else if (e.dtype === "F16") out[i] = f16ToF32(f.buffer.readUInt16LE(base + 2 * i));
    else out[i] = bf16ToF32(f.buffer.readUInt16LE(base + 2 * i));
  }
  return out;
}

export interface SafetensorsTensorIn {
  name: string;
  shape: number[];
  data: Float32Array;
  dtype?: SafetensorsDtype;
}

/** Write tensors (sorted by name, as HF does) atomically. */
export function writeSafetensors(file: string, tensors: SafetensorsTensorIn[], metadata: Record<string, string> = {}): void {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  const bodies: Buffer[] = [];
  let offset = 0;
  for (const t of sorted) {
    const dtype = t.dtype ?? "F32";
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== count) throw new VlaError("FILE_INVALID", `tensor ${t.name}: shape [${t.shape}] needs ${count} values, got ${t.data.length}`);
    const body = Buffer.alloc(count * BYTES[dtype]);
    for (let i = 0; i < count; i++) {
      const v = t.data[i] as number;
      if (dtype === "F32") body.writeFloatLE(v, 4 * i);
      else body.writeUInt16LE(dtype === "F16" ? f32ToF16(v) : f32ToBf16(v), 2 * i);
    }
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, offset + body.length] };
    bodies.push(body);
    offset += body.length;
  }
  let json = JSON.stringify(header);
  json += " ".repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8); // align the data section to 8 bytes
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  const fd = fs.openSync(tmp, "w");
  try {
    for (const b of [len, Buffer.from(json, "utf8"), ...bodies]) fs.writeSync(fd, b);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
}
