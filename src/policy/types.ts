/** What a policy is asked and answers (see policy.ts). */
import type { RgbImage } from "../data/episode.js";

export interface ActRequest {
  images: RgbImage[];
  instruction: string;
  state?: number[];
  /**
   * For a policy trained with history frames: the camera images of the earlier requests of the
   * same episode, oldest first (a session keeps them; see SessionStore.previous). Ignored by a
   * policy without history; missing frames repeat the oldest given (or the current ones).
   */
  history?: RgbImage[][];
}

export interface ActOptions {
  temperature?: number;
  seed?: number;
  jumpForward?: boolean;
  sparseMax?: number;
}

export type TimestepCallback = (t: number, raw: number[], normalized: number[]) => void;

/** One request of a batch. cancel: a flag from newCancelFlag(); set, the request stops at its next decoding step. */
export interface ActItem {
  req: ActRequest;
  options?: ActOptions;
  onTimestep?: TimestepCallback;
  cancel?: Int32Array;
}

export interface ActTimings {
  /** Preparing the batch's prompts and images (JavaScript). */
  promptMs: number;
  /** The batch's one vision-tower call (0 without images). */
  visionMs: number;
  generateMs: number;
  totalMs: number;
  promptTokens: number;
  generatedTokens: number;
  modelCalls: number;
  forcedTokens: number;
  maskMs: number;
  /** Requests decoded together with this one (itself included). */
  batchSize: number;
  /** Time spent waiting for the model before this batch (set by a scheduler; 0 when called directly). */
  queueMs: number;
}

export interface ActResult {
  text: string;
  /** (H, D) raw units (denormalized), or normalized when the policy has no statistics. */
  chunk: number[][];
  /** (H, D) normalized to [-1, 1]. */
  normalized: number[][];
  /** Whether the images reached the model (a vision-language model was given images). */
  imagesUsed: boolean;
  timings: ActTimings;
}

/** A batch item's outcome: failures are values, so one bad request never fails the others. */
export type ActOutcome = { status: "ok"; result: ActResult } | { status: "failed"; error: Error } | { status: "cancelled"; generatedTokens: number };
