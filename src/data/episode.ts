/**
 * The in-memory shape of one recorded episode, shared by dataset writers
 * (LeRobot v2.1 / v3.0) and producers (the toy simulator's expert).
 *
 * Shapes: T = frames in the episode, A = action dims, S = state dims,
 * images are RGB8, row-major (height, width, 3).
 */
export interface RgbImage {
  width: number;
  height: number;
  /** (height, width, 3) uint8 RGB, row-major. */
  data: Uint8Array;
}

export interface EpisodeData {
  /** Natural-language instruction for the whole episode. */
  task: string;
  /** (T, A) row-major actions. */
  actions: Float32Array;
  /** (T, S) row-major proprioceptive state; may be empty when S = 0. */
  states: Float32Array;
  /** camera name -> T frames. */
  images: Record<string, RgbImage[]>;
  /** Number of frames T. */
  length: number;
  /** Optional per-episode outcome (the simulator records whether the expert succeeded). */
  success?: boolean;
}

/** What a writer needs to know about every episode it will receive. */
export interface DatasetLayout {
  fps: number;
  robotType: string;
  actionNames: string[];
  stateNames: string[];
  cameras: Record<string, { width: number; height: number }>;
  /** How camera frames are stored: encoded PNG bytes inside parquet, or mp4 video files. */
  imageStorage: "png" | "mp4";
}
