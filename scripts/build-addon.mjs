#!/usr/bin/env node
// Builds the CPU addon with node-gyp during `npm install`, offline.
// node-gyp needs Node's headers; it downloads them unless told where they are.
// When the machine has them (Debian's nodejs puts them in /usr/include/node) and
// no nodedir is configured, point node-gyp there so nothing is downloaded.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

// An addon newer than every native source and binding.gyp is kept (npx, for one, runs this
// install script again in place); `--force` (npm run build) always rebuilds.
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const addon = path.join(root, "build", "Release", "vlatext.node");
function newestSource(dir) {
  let t = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestSource(p) : fs.statSync(p).mtimeMs);
  }
  return t;
}
if (!process.argv.includes("--force") && fs.existsSync(addon)) {
  const sources = Math.max(newestSource(path.join(root, "native")), fs.statSync(path.join(root, "binding.gyp")).mtimeMs);
  if (fs.statSync(addon).mtimeMs > sources) {
    console.log("vlatext: the native addon is up to date (npm run build rebuilds it)");
    process.exit(0);
  }
}

const env = { ...process.env };
const configured = env.npm_config_nodedir || env.NODEDIR;
if (!configured) {
  const prefix = path.resolve(path.dirname(process.execPath), "..");
  for (const dir of [prefix, "/usr", "/usr/local"]) {
    if (fs.existsSync(path.join(dir, "include", "node", "node_api.h"))) {
      env.npm_config_nodedir = dir;
      break;
    }
  }
}
const args = ["rebuild", ...(env.npm_config_nodedir ? [`--nodedir=${env.npm_config_nodedir}`] : [])];
const r = spawnSync("node-gyp", args, { stdio: "inherit", env, shell: process.platform === "win32" });
if (r.error) {
  console.error(`vlatext: could not run node-gyp (${r.error.message}). It ships with npm; run this through \`npm install\`.`);
  process.exitCode = 1;
} else {
  process.exitCode = r.status ?? 1;
}
