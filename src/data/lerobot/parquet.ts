/**
 * Parquet access for LeRobot files: open with errors that name the file,
 * read row ranges of chosen columns (hyparquet), and write the column types
 * LeRobot uses (hyparquet-writer): scalars, list<T> and the image struct
 * {bytes, path}.
 */
import fs from "node:fs";
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects, parquetSchema, type AsyncBuffer, type FileMetaData, type SchemaElement } from "hyparquet";
import { compressors } from "hyparquet-compressors";
import { parquetWriteBuffer } from "hyparquet-writer";
import { VlaError } from "../../errors.js";

export interface ParquetFile {
  path: string;
  file: AsyncBuffer;
  metadata: FileMetaData;
  rows: number;
  /** Top-level column names. */
  columns: string[];
}

/** Open a parquet file; DATA_MISSING when absent, DATA_INVALID when truncated or not parquet. */
export async function openParquet(file: string, what = "parquet file"): Promise<ParquetFile> {
  if (!fs.existsSync(file)) {
    throw new VlaError("DATA_MISSING", `${what} not found: ${file}`, "the dataset is incomplete; download it again or fix data_path in meta/info.json");
  }
  let buf: AsyncBuffer;
  let metadata: FileMetaData;
  try {
    buf = await asyncBufferFromFile(file);
    metadata = await parquetMetadataAsync(buf);
  } catch (e) {
    throw new VlaError(
      "DATA_INVALID",
      `${what} ${file} is not a readable parquet file (${(e as Error).message}); it is probably truncated or corrupt`,
      "download or export this file again",
      { cause: e },
    );
  }
  const columns = parquetSchema(metadata).children.map((c) => c.element.name);
  return { path: file, file: buf, metadata, rows: Number(metadata.num_rows), columns };
}

export type Row = Record<string, unknown>;

/** Rows [rowStart, rowEnd) of the given columns; byte arrays stay Uint8Array, UTF8 columns are strings. */
export async function readRows(pq: ParquetFile, columns: string[], rowStart = 0, rowEnd = pq.rows): Promise<Row[]> {
  for (const c of columns) {
    if (!pq.columns.includes(c)) {
      throw new VlaError("DATA_MISSING", `column '${c}' is not in ${pq.path} (columns: ${pq.columns.join(", ")})`, "check the feature name against meta/info.json");
    }
  }
  try {
    return (await parquetReadObjects({ file: pq.file, metadata: pq.metadata, columns, rowStart, rowEnd, compressors, utf8: false })) as Row[];
  } catch (e) {
    throw new VlaError("DATA_INVALID", `cannot read columns [${columns.join(", ")}] of ${pq.path}: ${(e as Error).message}`, "the file is probably truncated or corrupt; download or export it again", { cause: e });
  }
}

/** A value read from an integer or float column, as a JS number. */
export function asNumber(v: unknown, what: string): number {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  if (typeof v === "boolean") return v ? 1 : 0;
  throw new VlaError("DATA_INVALID", `${what} is ${v === null ? "null" : typeof v}, expected a number`, "the dataset has missing values; re-export it");
}

/** Copy `n` numbers from a list cell into `out` at `offset`. */
export function copyList(v: unknown, n: number, out: Float32Array | Float64Array, offset: number, what: string): void {
  if (Array.isArray(v) || ArrayBuffer.isView(v)) {
    const arr = v as ArrayLike<unknown>;
    if (arr.length !== n) throw new VlaError("DATA_INVALID", `${what} has ${arr.length} values, expected ${n} (from meta/info.json)`, "the shape in meta/info.json must match the data");
    for (let i = 0; i < n; i++) out[offset + i] = asNumber(arr[i], what);
    return;
  }
  if (n === 1) {
    out[offset] = asNumber(v, what);
    return;
  }
  throw new VlaError("DATA_INVALID", `${what} is not a list of ${n} numbers`, "the shape in meta/info.json must match the data");
}

// ---- writing -------------------------------------------------------------

export type ValueType = "float32" | "float64" | "int64" | "string" | "bool";

export type ColumnSpec =
  | { name: string; kind: "scalar"; type: ValueType; data: unknown[] }
  | { name: string; kind: "list"; type: ValueType; data: unknown[] }
  | { name: string; kind: "image"; data: Array<{ bytes: Uint8Array; path: string | null }> };

function leaf(name: string, type: ValueType): SchemaElement {
  switch (type) {
    case "float32":
      return { name, type: "FLOAT", repetition_type: "OPTIONAL" };
    case "float64":
      return { name, type: "DOUBLE", repetition_type: "OPTIONAL" };
    case "int64":
      return { name, type: "INT64", repetition_type: "OPTIONAL" };
    case "string":
      return { name, type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "OPTIONAL" };
    case "bool":
      return { name, type: "BOOLEAN", repetition_type: "OPTIONAL" };
  }
}

function schemaFor(cols: ReadonlyArray<ColumnSpec>): SchemaElement[] {
  const out: SchemaElement[] = [{ name: "schema", num_children: cols.length }];
  for (const c of cols) {
    if (c.kind === "scalar") out.push(leaf(c.name, c.type));
    else if (c.kind === "list") {
      out.push({ name: c.name, repetition_type: "OPTIONAL", num_children: 1, converted_type: "LIST" });
      out.push({ name: "list", repetition_type: "REPEATED", num_children: 1 });
      out.push(leaf("element", c.type));
    } else {
      out.push({ name: c.name, repetition_type: "OPTIONAL", num_children: 2 });
      out.push({ name: "bytes", type: "BYTE_ARRAY", repetition_type: "OPTIONAL" });
      out.push({ name: "path", type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "OPTIONAL" });
    }
  }
  return out;
}

function convert(type: ValueType, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  if (type === "int64") return typeof v === "bigint" ? v : BigInt(v as number);
  return v;
}

/** Write columns to `file` (snappy); int64 values may be numbers; null/undefined are nulls. */
export function writeParquet(file: string, cols: ReadonlyArray<ColumnSpec>, kv: Record<string, string> = {}): void {
  const rows = cols[0]?.data.length ?? 0;
  for (const c of cols) {
    if (c.data.length !== rows) throw new VlaError("DATA_INVALID", `column '${c.name}' has ${c.data.length} rows, expected ${rows}`);
  }
  const columnData = cols.map((c) => {
    if (c.kind === "scalar") return { name: c.name, data: c.data.map((v) => convert(c.type, v)) };
    if (c.kind === "list") return { name: c.name, data: c.data.map((v) => (v == null ? null : Array.from(v as ArrayLike<unknown>, (x) => convert(c.type, x)))) };
    return { name: c.name, data: c.data };
  });
  const buf = parquetWriteBuffer({
    schema: schemaFor(cols),
    columnData,
    kvMetadata: Object.entries(kv).map(([key, value]) => ({ key, value })),
    createdBy: "vlatext",
    rowGroupSize: 100_000,
  });
  fs.writeFileSync(file, new Uint8Array(buf));
}
