/**
 * Slow, obvious references for test/actions/ensembler.test.ts. A chunk is
 * number[][] of shape (H, D); a stream is the chunks in the order a policy
 * would produce them, consumed one per prediction.
 */

/**
 * VLA-0's LIBERO loop (NVlabs/vla0, libs/RoboVerse/roboverse/evals/libero/
 * eval.py, eval_run after the frame_skip warm-up), transliterated line by
 * line: the list of old chunks' remainders, pop(0) beyond
 * ensemble_prediction, shift by action_horizon, weights 0.5 (v1) or
 * w ** (len - i - 1) (v2), then the last dimension snapped with
 * `if act[-1] not in [1, -1]: act[-1] = 1 if act[-1] > 0 else -1` when
 * snapLast. Returns the executed actions.
 */
export function vla0Loop(
  stream: number[][][],
  steps: number,
  actionHorizon: number,
  ensemblePrediction: number,
  ensembleVersion: 1 | 2,
  ensemble2Weight: number,
  snapLast = false,
): number[][] {
  const executed: number[][] = [];
  let oldActionChunks: number[][][] = [];
  let actionChunk: number[][] = [];
  let actionI = 0;
  let next = 0;
  for (let t = 0; t < steps; t++) {
    if (actionI >= actionHorizon || t === 0) {
      actionChunk = stream[next++]!.map((row) => [...row]);
      if (ensemblePrediction > 1) {
        oldActionChunks.push(actionChunk);
        if (oldActionChunks.length > ensemblePrediction) oldActionChunks.shift();
        const nOldActionChunks: number[][][] = [];
        const sum = actionChunk.map((row) => row.map(() => 0)); // np.zeros_like
        const count = actionChunk.map((row) => row.map(() => 0));
        for (let i = 0; i < oldActionChunks.length - 1; i++) {
          let old = oldActionChunks[i]!;
          if (old.length <= actionHorizon) continue;
          old = old.slice(actionHorizon);
          nOldActionChunks.push(old);
          const w = ensembleVersion === 1 ? 0.5 : ensemble2Weight ** (oldActionChunks.length - i - 1);
          for (let p = 0; p < old.length; p++) {
            for (let d = 0; d < old[p]!.length; d++) {
              sum[p]![d]! += w * old[p]![d]!;
              count[p]![d]! += w;
            }
          }
        }
        const newest = oldActionChunks[oldActionChunks.length - 1]!;
        nOldActionChunks.push(newest);
        for (let p = 0; p < newest.length; p++) {
          for (let d = 0; d < newest[p]!.length; d++) {
            sum[p]![d]! += newest[p]![d]!;
            count[p]![d]! += 1;
          }
        }
        oldActionChunks = nOldActionChunks;
        actionChunk = sum.map((row, p) => row.map((v, d) => v / count[p]![d]!));
      }
      actionI = 0;
      actionHorizon = Math.min(actionHorizon, actionChunk.length);
    }
    const act = [...actionChunk[actionI]!];
    const last = act.length - 1;
    if (snapLast && act[last] !== 1 && act[last] !== -1) act[last] = act[last]! > 0 ? 1 : -1;
    executed.push(act);
    actionI++;
  }
  return executed;
}

/**
 * ACT's temporal ensembling the slow way (as in ACT's imitate_episodes.py):
 * keep every chunk with its start time, and at each step recompute from
 * scratch the chunks within the window that cover t, weighted exp(-k*i) with
 * i = 0 for the oldest. A chunk is predicted every executeK steps (already
 * clamped to H by the caller).
 */
export function actSlow(stream: number[][][], steps: number, k: number, executeK: number, H: number, window: number): number[][] {
  const all: Array<{ start: number; chunk: number[][] }> = [];
  const out: number[][] = [];
  for (let t = 0; t < steps; t++) {
    if (t % executeK === 0) all.push({ start: t, chunk: stream[all.length]! });
    const covering = all.slice(-window).filter((x) => t - x.start < H);
    const weights = covering.map((_, i) => Math.exp(-k * i));
    const total = weights.reduce((a, b) => a + b, 0);
    const D = covering[0]!.chunk[0]!.length;
    out.push(Array.from({ length: D }, (_, d) => covering.reduce((s, x, i) => s + weights[i]! * x.chunk[t - x.start]![d]!, 0) / total));
  }
  return out;
}
