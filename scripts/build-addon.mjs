#!/usr/bin/env node
// Builds the CPU addon with node-gyp during `npm install`, offline.
// node-gyp needs Node's headers; it downloads them unless told where they are.
// When the machine has them (Debian's nodejs puts them in /usr/include/node) and
// no nodedir is configured, point node-gyp there so nothing is downloaded.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

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
