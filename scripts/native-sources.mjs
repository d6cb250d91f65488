#!/usr/bin/env node
// Prints the native sources of one group from native/sources.txt, space-separated, for
// binding.gyp's command expansion: node scripts/native-sources.mjs engine
import fs from "node:fs";
import path from "node:path";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const group = process.argv[2];
const lines = fs.readFileSync(path.join(root, "native", "sources.txt"), "utf8").split("\n");
const files = lines.map((l) => l.trim()).filter((l) => l && !l.startsWith("#")).map((l) => l.split(/\s+/)).filter(([g]) => g === group).map(([, f]) => f);
if (files.length === 0) {
  console.error(`native-sources: no sources in group '${group}' (native/sources.txt)`);
  process.exit(1);
}
console.log(files.join(" "));
