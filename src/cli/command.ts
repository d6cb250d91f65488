import { parseArgs, type ParseArgsConfig } from "node:util";
import { VlaError } from "../errors.js";
import { CAMERA_NAMES, DEFAULT_CAMERAS, cameraOrder, type CameraName } from "../sim/camera.js";

/** Where a command writes. Tests pass buffers; the binary passes the process streams. */
export interface CliIO {
  out: (text: string) => void;
  err: (text: string) => void;
  /** True when stderr is a terminal (progress bars redraw in place). */
  isTTY: boolean;
  cwd: string;
}

export type OptionSpec = NonNullable<ParseArgsConfig["options"]>;

export interface OptionHelp {
  /** Shown as "--name <value>" in --help. */
  value?: string;
  description: string;
}

/**
 * One CLI verb. Handlers return an exit code; they never call process.exit.
 * A command either runs itself or dispatches to subcommands.
 */
export interface CliCommand {
  name: string;
  summary: string;
  /** Extra text printed under the usage line in --help. */
  details?: string;
  options?: OptionSpec;
  optionHelp?: Record<string, OptionHelp>;
  positionals?: string;
  subcommands?: ReadonlyArray<CliCommand>;
  run?: (args: ParsedArgs, io: CliIO) => Promise<number>;
}

export interface ParsedArgs {
  values: Record<string, string | boolean | Array<string | boolean> | undefined>;
  positionals: string[];
}

export function helpText(cmd: CliCommand, path: string): string {
  const lines: string[] = [];
  const subs = cmd.subcommands ?? [];
  const usage = subs.length > 0 ? `${path} <command> [options]` : `${path} [options]${cmd.positionals ? ` ${cmd.positionals}` : ""}`;
  lines.push(`Usage: ${usage}`, "", cmd.summary);
  if (cmd.details) lines.push("", cmd.details);
  if (subs.length > 0) {
    lines.push("", "Commands:");
    const w = Math.max(...subs.map((s) => s.name.length));
    for (const s of subs) lines.push(`  ${s.name.padEnd(w)}  ${s.summary}`);
  }
  const opts = Object.entries(cmd.options ?? {});
  lines.push("", "Options:");
  const rows: Array<[string, string]> = opts.map(([name, spec]) => {
    const h = cmd.optionHelp?.[name];
    const flag = `--${name}${spec.type === "string" ? ` <${h?.value ?? "value"}>` : ""}`;
    return [flag, h?.description ?? ""];
  });
  rows.push(["--help", "Show this help"]);
  const w = Math.max(...rows.map((r) => r[0].length));
  for (const [f, d] of rows) lines.push(`  ${f.padEnd(w)}  ${d}`);
  return lines.join("\n") + "\n";
}

/** Parse argv for `cmd` (argv excludes the command path) and run it. */
export async function runCommand(cmd: CliCommand, argv: string[], io: CliIO, path: string): Promise<number> {
  const subs = cmd.subcommands ?? [];
  if (subs.length > 0) {
    const [first, ...rest] = argv;
    if (first === undefined || first === "--help" || first === "-h" || first === "help") {
      io.out(helpText(cmd, path));
      return first === undefined ? 1 : 0;
    }
    const sub = subs.find((s) => s.name === first);
    if (!sub) {
      io.err(`error: unknown command '${first}' for '${path}'.\n  hint: one of: ${subs.map((s) => s.name).join(", ")}. Run '${path} --help'.\n`);
      return 2;
    }
    return runCommand(sub, rest, io, `${path} ${sub.name}`);
  }
  if (argv.includes("--help") || argv.includes("-h")) {
    io.out(helpText(cmd, path));
    return 0;
  }
  let parsed: ParsedArgs;
  try {
    const r = parseArgs({ args: argv, options: cmd.options ?? {}, allowPositionals: cmd.positionals !== undefined, strict: true });
    parsed = { values: r.values as ParsedArgs["values"], positionals: r.positionals };
  } catch (e) {
    io.err(`error: ${(e as Error).message}\n  hint: run '${path} --help' for the options.\n`);
    return 2;
  }
  if (!cmd.run) {
    io.out(helpText(cmd, path));
    return 1;
  }
  try {
    return await cmd.run(parsed, io);
  } catch (e) {
    if (e instanceof VlaError) {
      io.err(`error [${e.code}]: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

/** Read a string option, or undefined. */
export function str(args: ParsedArgs, name: string): string | undefined {
  const v = args.values[name];
  return typeof v === "string" ? v : undefined;
}

/** Read a boolean flag. */
export function flag(args: ParsedArgs, name: string): boolean {
  return args.values[name] === true;
}

/** Read a string option repeated any number of times (option declared with multiple: true). */
export function strList(args: ParsedArgs, name: string): string[] {
  const v = args.values[name];
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === "string");
  return typeof v === "string" ? [v] : [];
}

/** Parse an integer option; throws a CLI_USAGE error naming the flag. */
export function intOpt(args: ParsedArgs, name: string, fallback: number, min = Number.MIN_SAFE_INTEGER): number {
  const v = str(args, name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    throw new VlaError("CLI_USAGE", `--${name} must be an integer >= ${min}, got '${v}'.`, `pass e.g. --${name} ${fallback}`);
  }
  return n;
}

/**
 * A comma-separated camera list option (--cameras top,wrist), in tiling order (CAMERA_NAMES),
 * or undefined when absent; throws a CLI_USAGE error naming an unknown or repeated camera.
 */
export function camerasOpt(args: ParsedArgs, name: string): CameraName[] | undefined {
  const v = str(args, name);
  if (v === undefined) return undefined;
  const names = v.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
  const hint = `name cameras from ${CAMERA_NAMES.join(", ")}, comma-separated, each once (default ${DEFAULT_CAMERAS.join(",")})`;
  const bad = names.find((n) => !(CAMERA_NAMES as string[]).includes(n));
  if (names.length === 0 || bad !== undefined) throw new VlaError("CLI_USAGE", `--${name}: ${bad === undefined ? "no camera named" : `unknown camera '${bad}'`}.`, hint);
  if (new Set(names).size !== names.length) throw new VlaError("CLI_USAGE", `--${name}: a camera is named twice in '${v}'.`, hint);
  return cameraOrder(names as CameraName[]);
}
