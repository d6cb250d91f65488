/**
 * Sessions: one robot's stream of chunks, temporally ensembled (src/actions/ensembler.ts)
 * into the next actions to execute, and, for a policy trained with history frames, the
 * camera images of its last requests. A store keeps a bounded number of them, least
 * recently used first out, each dropped after a time without requests.
 */
import { TemporalEnsembler } from "../actions/ensembler.js";
import type { RgbImage } from "../data/episode.js";
import type { Policy } from "./policy.js";

export interface SessionStep {
  /** The next executeK actions in robot units. */
  actions: number[][];
  /** Actions handed out by this session so far. */
  time: number;
}

export interface SessionStoreOptions {
  /** A session unused this long is dropped (default 10 minutes). */
  ttlMs?: number;
  /** Sessions kept at once; the least recently used go first (default 1024). */
  maxSessions?: number;
  /**
   * Bytes of history-frame images kept over all sessions (a policy with history); past it, the
   * least recently used sessions go first (default 512 MiB).
   */
  maxFrameBytes?: number;
  /** The clock (tests pass their own). */
  now?: () => number;
}

export class SessionStore {
  private readonly sessions = new Map<string, { ensembler: TemporalEnsembler; lastUsed: number; frames: RgbImage[][] }>();
  readonly ttlMs: number;
  readonly maxSessions: number;
  readonly maxFrameBytes: number;
  private frameBytes = 0;
  private readonly now: () => number;

  constructor(
    private readonly policy: Pick<Policy, "ensemble" | "spec" | "denormalize"> & { readonly history?: number },
    options: SessionStoreOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? 10 * 60 * 1000;
    this.maxSessions = options.maxSessions ?? 1024;
    this.maxFrameBytes = options.maxFrameBytes ?? 512 * 1024 * 1024;
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    this.expire();
    return this.sessions.size;
  }

  private expire(): void {
    const now = this.now();
    for (const [k, s] of this.sessions) if (now - s.lastUsed > this.ttlMs) this.drop(k);
  }

  private drop(id: string): void {
    const s = this.sessions.get(id);
    if (s) for (const f of s.frames) this.frameBytes -= bytes(f);
    this.sessions.delete(id);
  }

  /**
   * The camera images of session `id`'s last requests (at most the policy's history, oldest
   * first; none for a new session or a policy without history): the next request's ActRequest.history.
   */
  previous(id: string): RgbImage[][] {
    this.expire();
    return [...(this.sessions.get(id)?.frames ?? [])];
  }

  /**
   * Feed session `id` a predicted chunk ((H, D) normalized) and the camera images it was predicted
   * from (kept for a policy with history); the actions to execute next.
   */
  step(id: string, normalized: readonly number[][], images?: RgbImage[]): SessionStep {
    this.expire();
    let s = this.sessions.get(id);
    if (!s) s = { ensembler: new TemporalEnsembler(this.policy.ensemble, this.policy.spec.horizon, this.policy.spec.dims), lastUsed: 0, frames: [] };
    const keep = this.policy.history ?? 0;
    if (keep > 0 && images && images.length > 0) {
      s.frames.push(images);
      this.frameBytes += bytes(images);
      if (s.frames.length > keep) this.frameBytes -= bytes(s.frames.shift() as RgbImage[]);
    }
    s.lastUsed = this.now();
    this.sessions.delete(id); // keep the map in least-recently-used order
    this.sessions.set(id, s);
    while (this.sessions.size > this.maxSessions) this.drop(this.sessions.keys().next().value as string);
    // the frames of the least recently used sessions go first (never this one's)
    while (this.frameBytes > this.maxFrameBytes && this.sessions.size > 1) this.drop(this.sessions.keys().next().value as string);
    const e = s.ensembler;
    while (!e.needsPrediction()) e.next(); // the client skipped actions: catch up
    e.push(Float32Array.from(normalized.flat()));
    const actions: number[][] = [];
    for (let k = 0; k < e.executeK; k++) actions.push(this.policy.denormalize(e.next()));
    return { actions, time: e.time };
  }

  /** Forget a session (an episode ended). */
  end(id: string): void {
    this.drop(id);
  }
}

const bytes = (images: readonly RgbImage[]): number => images.reduce((a, img) => a + img.data.length, 0);
