/**
 * The server's one way to the model. Every request waits in a bounded queue; whenever
 * the model is free, the next batch (up to maxBatch requests) goes to Policy.actBatch:
 * one vision-tower call for all its images, one batched generation. Nothing else calls
 * the policy while the server runs, so no request ever meets a busy native handle.
 *
 * Each request has a deadline (queue time included) and may carry an AbortSignal (its
 * client went away): a queued request is dropped at once, a running one is cancelled at
 * its next decoding step while the rest of its batch goes on. close() stops taking
 * requests, lets the queued and running ones finish within a grace period, cancels what
 * is left, and resolves once no model call runs (the native handles can then be freed).
 */
import { cancelGeneration, newCancelFlag } from "../engine/automaton.js";
import type { ActItem, ActOutcome, ActResult, Policy } from "../policy/policy.js";

export type ScheduleErrorKind = "busy" | "closing" | "cancelled" | "deadline";

/** Why the scheduler did not run a request to its end. */
export class ScheduleError extends Error {
  constructor(
    readonly kind: ScheduleErrorKind,
    message: string,
    /** For "busy" and "closing": seconds after which a retry is likely to be taken. */
    readonly retryAfterS?: number,
  ) {
    super(message);
    this.name = "ScheduleError";
  }
}

export interface SchedulerOptions {
  /** Requests waiting or running before new ones are refused as busy (default 64). */
  maxQueue?: number;
  /** Requests decoded together in one batch (default 16). */
  maxBatch?: number;
  /** A request's time limit, queue time included (default 60 s). */
  deadlineMs?: number;
}

export interface SubmitOptions {
  /** Aborted: the request is dropped from the queue, or cancelled while it runs. */
  signal?: AbortSignal;
  /** This request's time limit (default the scheduler's). */
  deadlineMs?: number;
}

interface Entry {
  item: ActItem & { cancel: Int32Array };
  resolve: (r: ActResult) => void;
  reject: (e: unknown) => void;
  state: "queued" | "running" | "done";
  /** Why it was stopped, once it was. */
  reason?: "cancelled" | "deadline" | "closing";
  submitted: number;
  /** When its batch started. */
  started?: number;
  timer: ReturnType<typeof setTimeout>;
  signal?: AbortSignal;
  onAbort?: () => void;
}

export interface SchedulerStats {
  batches: number;
  /** batch size -> batches of that size. */
  batchSizes: Map<number, number>;
  completed: number;
  failed: number;
  cancelled: number;
  deadlines: number;
  refused: number;
  /** Tokens generated for requests that were cancelled or hit their deadline. */
  wastedTokens: number;
}

const STOPPED: Record<NonNullable<Entry["reason"]>, string> = {
  cancelled: "the request was cancelled (its client went away)",
  deadline: "the request ran past its deadline",
  closing: "the server is shutting down",
};

export class Scheduler {
  readonly maxQueue: number;
  readonly maxBatch: number;
  readonly deadlineMs: number;
  readonly stats: SchedulerStats = { batches: 0, batchSizes: new Map(), completed: 0, failed: 0, cancelled: 0, deadlines: 0, refused: 0, wastedTokens: 0 };
  private readonly queue: Entry[] = [];
  private running: Entry[] = [];
  private tick: Promise<void> | undefined;
  private closing = false;
  private idleWaiters: Array<() => void> = [];
  /** Smoothed wall time of a batch (for Retry-After). */
  private batchMs = 0;

  constructor(
    private readonly policy: Pick<Policy, "actBatch">,
    options: SchedulerOptions = {},
  ) {
    this.maxQueue = options.maxQueue ?? 64;
    this.maxBatch = options.maxBatch ?? 16;
    this.deadlineMs = options.deadlineMs ?? 60_000;
  }

  /** Requests waiting or running. */
  get depth(): number {
    return this.queue.length + this.running.length;
  }

  get isClosing(): boolean {
    return this.closing;
  }

  /** Seconds until the queue has likely moved enough to take a request (at least 1). */
  retryAfterS(): number {
    const batchesAhead = Math.ceil(this.depth / this.maxBatch);
    return Math.min(60, Math.max(1, Math.ceil((batchesAhead * this.batchMs) / 1000)));
  }

  submit(item: Omit<ActItem, "cancel">, options: SubmitOptions = {}): Promise<ActResult> {
    if (this.closing) return Promise.reject(new ScheduleError("closing", STOPPED.closing, 1));
    if (this.depth >= this.maxQueue) {
      this.stats.refused++;
      return Promise.reject(new ScheduleError("busy", `server busy: ${this.depth} requests queued or running (limit ${this.maxQueue})`, this.retryAfterS()));
    }
    if (options.signal?.aborted) return Promise.reject(new ScheduleError("cancelled", STOPPED.cancelled));
    return new Promise<ActResult>((resolve, reject) => {
      const entry: Entry = {
        item: { ...item, cancel: newCancelFlag() },
        resolve,
        reject,
        state: "queued",
        submitted: performance.now(),
        timer: setTimeout(() => this.stop(entry, "deadline"), options.deadlineMs ?? this.deadlineMs),
      };
      if (options.signal) {
        entry.signal = options.signal;
        entry.onAbort = () => this.stop(entry, "cancelled");
        options.signal.addEventListener("abort", entry.onAbort, { once: true });
      }
      this.queue.push(entry);
      this.pump();
    });
  }

  /** Stop one request: dropped when queued, cancelled (at its next step) when running. */
  private stop(entry: Entry, reason: NonNullable<Entry["reason"]>): void {
    if (entry.state === "done") return;
    entry.reason ??= reason;
    if (entry.state === "queued") {
      this.queue.splice(this.queue.indexOf(entry), 1);
      this.finishStopped(entry, 0);
      this.notifyIdle();
    } else cancelGeneration(entry.item.cancel);
  }

  private settle(entry: Entry): void {
    entry.state = "done";
    clearTimeout(entry.timer);
    if (entry.signal && entry.onAbort) entry.signal.removeEventListener("abort", entry.onAbort);
  }

  private finishStopped(entry: Entry, tokens: number): void {
    this.settle(entry);
    const reason = entry.reason ?? "cancelled";
    if (reason === "deadline") this.stats.deadlines++;
    else this.stats.cancelled++;
    this.stats.wastedTokens += tokens;
    entry.reject(new ScheduleError(reason, STOPPED[reason], reason === "closing" ? 1 : undefined));
  }

  private finish(entry: Entry, outcome: ActOutcome): void {
    if (outcome.status === "cancelled") return this.finishStopped(entry, outcome.generatedTokens);
    this.settle(entry);
    if (outcome.status === "failed") {
      this.stats.failed++;
      entry.reject(outcome.error);
      return;
    }
    this.stats.completed++;
    outcome.result.timings.queueMs = (entry.started ?? entry.submitted) - entry.submitted;
    entry.resolve(outcome.result);
  }

  private pump(): void {
    if (this.tick || this.queue.length === 0) return;
    const batch = this.queue.splice(0, this.maxBatch);
    const t0 = performance.now();
    for (const e of batch) {
      e.state = "running";
      e.started = t0;
    }
    this.running = batch;
    this.stats.batches++;
    this.stats.batchSizes.set(batch.length, (this.stats.batchSizes.get(batch.length) ?? 0) + 1);
    this.tick = (async () => {
      let outcomes: ActOutcome[];
      try {
        outcomes = await this.policy.actBatch(batch.map((e) => e.item));
      } catch (e) {
        outcomes = batch.map(() => ({ status: "failed", error: e as Error }));
      }
      const ms = performance.now() - t0;
      this.batchMs = this.batchMs === 0 ? ms : 0.8 * this.batchMs + 0.2 * ms;
      batch.forEach((e, i) => this.finish(e, outcomes[i] ?? { status: "failed", error: new Error("no outcome for a batch item") }));
    })().finally(() => {
      this.tick = undefined;
      this.running = [];
      this.pump();
      this.notifyIdle();
    });
  }

  private notifyIdle(): void {
    if (this.depth > 0 || this.tick) return;
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const f of w) f();
  }

  /** Resolves when nothing is queued or running. */
  idle(): Promise<void> {
    if (this.depth === 0 && !this.tick) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stop every queued and running request now. */
  cancelAll(reason: "cancelled" | "closing" = "closing"): void {
    for (const e of [...this.queue, ...this.running]) this.stop(e, reason);
  }

  /**
   * Refuse new requests; give the queued and running ones graceMs to finish, then cancel
   * them; resolves when no model call runs any more.
   */
  async close(graceMs = 10_000): Promise<void> {
    this.closing = true;
    const timer = setTimeout(() => this.cancelAll("closing"), graceMs);
    try {
      await this.idle();
    } finally {
      clearTimeout(timer);
    }
  }
}
