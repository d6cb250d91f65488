/**
 * `vlatext dataset`: look at a LeRobot dataset (inspect) and compute the
 * action/state statistics that normalization needs (stats), in one streaming
 * pass over the episodes' tables.
 */
import path from "node:path";
import { StatsAccumulator, saveStats, type ActionStats } from "../../actions/stats.js";
import { VlaError } from "../../errors.js";
import { LeRobotDataset, summarizeIndexes } from "../../data/lerobot/dataset.js";
import { describeFfmpeg, findFfmpeg, probeVideo } from "../../data/lerobot/ffmpeg.js";
import { featureKind, featureSize } from "../../data/lerobot/format.js";
import { bindRecipe, loadRecipe, selectDims, splitEpisodes, type BoundVector } from "../../data/recipe.js";
import { flag, intOpt, str, type CliCommand, type CliIO, type ParsedArgs } from "../command.js";
import { table } from "../table.js";

async function openDataset(args: ParsedArgs, verb: string): Promise<LeRobotDataset> {
  const dir = args.positionals[0];
  if (!dir || args.positionals.length > 1) throw new VlaError("CLI_USAGE", `expected one dataset folder, got ${args.positionals.length}`, `vlatext dataset ${verb} <dir>`);
  return LeRobotDataset.open(dir);
}

function wholeVector(ds: LeRobotDataset, key: string): BoundVector {
  const size = featureSize(ds.feature(key));
  return { key, start: 0, end: size, size, names: ds.names(key) };
}

/** Action and state stats over `episodes`, one pass over their tables. */
export async function computeStats(ds: LeRobotDataset, action: BoundVector, state: BoundVector | undefined, episodes: ReadonlyArray<number>): Promise<{ action: ActionStats; state: ActionStats | undefined }> {
  const acc = new StatsAccumulator(action.end - action.start, action.names);
  const sacc = state ? new StatsAccumulator(state.end - state.start, state.names) : undefined;
  for (const e of episodes) {
    const t = await ds.readEpisodeTable(e, { columns: [...new Set([action.key, ...(state ? [state.key] : [])])] });
    acc.pushRows(selectDims(t.column(action.key).data, t.length, action), t.length);
    if (state && sacc) sacc.pushRows(selectDims(t.column(state.key).data, t.length, state), t.length);
  }
  return { action: acc.finalize(), state: sacc?.finalize() };
}

const f4 = (x: number) => x.toFixed(4);

function statsTable(title: string, key: string, s: ActionStats): string {
  const rows = s.names.map((n, d) => [n, f4(s.min[d] as number), f4(s.max[d] as number), f4(s.mean[d] as number), f4(s.std[d] as number), f4(s.q01[d] as number), f4(s.q99[d] as number)]);
  return `\n${title} '${key}' (${s.dims} dims, ${s.count} rows)\n` + table(["dim", "min", "max", "mean", "std", "q01", "q99"], rows);
}

async function inspect(args: ParsedArgs, io: CliIO): Promise<number> {
  const ds = await openDataset(args, "inspect");
  const info = ds.info;
  io.out(`dataset   ${ds.dir}\n`);
  io.out(`version   ${info.codebase_version}   robot ${info.robot_type ?? "?"}   fps ${ds.fps}\n`);
  io.out(`episodes  ${ds.episodes.length} (indexes ${summarizeIndexes(ds.episodes.map((e) => e.index))})   frames ${ds.totalFrames}   tasks ${ds.tasks.size}\n`);
  io.out(`\nfeatures\n`);
  io.out(
    table(
      ["feature", "dtype", "shape", "kind"],
      Object.entries(ds.features).map(([k, f]) => [k, f.dtype, `(${f.shape.join(", ")})`, featureKind(f)]),
    ),
  );
  const cams = ds.cameraKeys;
  if (cams.length > 0) {
    io.out(`\ncameras\n`);
    let ffLine = "";
    const rows = cams.map((k) => {
      const f = ds.feature(k);
      const size = `${f.shape[1]}x${f.shape[0]}`;
      if (featureKind(f) === "image") return [k, "image in parquet", size, "png/jpeg"];
      const said = String((f.info ?? {})["video.codec"] ?? "?");
      const first = ds.episodes[0];
      let codec = "?";
      if (first) {
        try {
          const ff = findFfmpeg();
          ffLine = describeFfmpeg(ff);
          const p = probeVideo(ds.videoFile(first, k).file, ff);
          codec = p.codec === said ? p.codec : `${p.codec} (info.json says ${said})`;
        } catch (e) {
          codec = `? (${e instanceof VlaError ? e.code : "error"})`;
        }
      }
      return [k, "video (mp4)", size, codec];
    });
    io.out(table(["camera", "storage", "size", "codec"], rows));
    if (ffLine) io.out(`decoder: ${ffLine}\n`);
  }
  const limit = intOpt(args, "episodes", 20, 0);
  io.out(`\nepisodes${ds.episodes.length > limit ? ` (first ${limit} of ${ds.episodes.length})` : ""}\n`);
  io.out(table(["episode", "length", "task"], ds.episodes.slice(0, limit).map((e) => [e.index, e.length, e.tasks.join(" | ")])));
  if (!flag(args, "no-stats")) {
    const vectors = ["action", "observation.state"].filter((k) => k in ds.features && featureKind(ds.feature(k)) === "numeric");
    const [a, s] = vectors;
    if (a) {
      const st = await computeStats(ds, wholeVector(ds, a), s ? wholeVector(ds, s) : undefined, ds.episodes.map((e) => e.index));
      io.out(statsTable("statistics of", a, st.action));
      if (s && st.state) io.out(statsTable("statistics of", s, st.state));
    }
  }
  return 0;
}

async function stats(args: ParsedArgs, io: CliIO): Promise<number> {
  const ds = await openDataset(args, "stats");
  const recipeArg = str(args, "recipe");
  const split = str(args, "split") ?? "all";
  if (!["all", "train", "val"].includes(split)) throw new VlaError("CLI_USAGE", `--split must be all, train or val, got '${split}'`, "e.g. --split train");
  let action: BoundVector;
  let state: BoundVector | undefined;
  let episodes = ds.episodes.map((e) => e.index);
  if (recipeArg) {
    const bound = bindRecipe(loadRecipe(recipeArg), ds);
    action = bound.action;
    state = bound.state;
    if (split !== "all") episodes = splitEpisodes(bound.recipe, episodes)[split as "train" | "val"];
  } else {
    if (split !== "all") throw new VlaError("CLI_USAGE", `--split ${split} needs --recipe (the recipe defines the split)`, "add --recipe <file|name>");
    action = wholeVector(ds, "action");
    state = "observation.state" in ds.features ? wholeVector(ds, "observation.state") : undefined;
  }
  if (episodes.length === 0) throw new VlaError("DATA_INVALID", `split '${split}' selects no episodes`, "change the recipe's splits");
  const st = await computeStats(ds, action, state, episodes);
  io.out(`${ds.dir}: ${episodes.length} episode(s), ${st.action.count} rows (split ${split})\n`);
  io.out(statsTable("action", action.key, st.action));
  if (state && st.state) io.out(statsTable("state", state.key, st.state));
  const out = str(args, "out");
  if (out) {
    const file = path.resolve(io.cwd, out);
    saveStats(file, st.action);
    io.out(`\nwrote action statistics to ${file}\n`);
  }
  const stateOut = str(args, "state-out");
  if (stateOut) {
    if (!st.state) throw new VlaError("CLI_USAGE", "--state-out given but the dataset/recipe has no state feature", "drop --state-out");
    const file = path.resolve(io.cwd, stateOut);
    saveStats(file, st.state);
    io.out(`wrote state statistics to ${file}\n`);
  }
  return 0;
}

const inspectCommand: CliCommand = {
  name: "inspect",
  summary: "Show a LeRobot dataset's version, fps, features, cameras, episodes and action/state statistics",
  positionals: "<dir>",
  options: { episodes: { type: "string" }, "no-stats": { type: "boolean" } },
  optionHelp: {
    episodes: { value: "n", description: "List at most n episodes (default 20)" },
    "no-stats": { description: "Skip the statistics pass over the data" },
  },
  run: inspect,
};

const statsCommand: CliCommand = {
  name: "stats",
  summary: "Compute per-dimension action (and state) statistics in one streaming pass",
  details: "Without --recipe: the 'action' and 'observation.state' features. --out writes the action statistics\n(the ActionStats JSON that loadStats reads); --state-out the state statistics.",
  positionals: "<dir>",
  options: { out: { type: "string" }, "state-out": { type: "string" }, recipe: { type: "string" }, split: { type: "string" } },
  optionHelp: {
    out: { value: "file", description: "Write the action statistics JSON here" },
    "state-out": { value: "file", description: "Write the state statistics JSON here" },
    recipe: { value: "file|name", description: "Recipe choosing the action/state features and slices (e.g. toy-sim)" },
    split: { value: "all|train|val", description: "Episodes to use (train/val need --recipe; default all)" },
  },
  run: stats,
};

export const datasetCommand: CliCommand = {
  name: "dataset",
  summary: "Inspect LeRobot datasets and compute their statistics",
  subcommands: [inspectCommand, statsCommand],
};
