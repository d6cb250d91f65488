/**
 * The embedded default: a tiny Qwen2.5-VL-architecture model that is created on the
 * spot (seeded random weights) and saved as a normal Hugging Face directory:
 * config.json (Qwen2_5_VLForConditionalGeneration), model.safetensors (HF names),
 * tokenizer.json / tokenizer_config.json (a byte-level BPE trained here on the
 * project's own instruction and prompt text, digits kept single), chat template.
 * No download anywhere.
 */
import fs from "node:fs";
import path from "node:path";
import { writeSafetensors } from "../io/safetensors.js";
import { promptsDir, listTemplates } from "../prompts/template.js";
import { Rng } from "../rng.js";
import { VlaError } from "../errors.js";
import { QWEN25VL_PROCESSOR, preprocessImage, type VisionProcessorConfig } from "../vision/processor.js";
import type { RgbImage } from "../data/episode.js";
import { QWEN_VL_SPECIALS, saveBpeTokenizer, trainBpe } from "./bpe.js";

export interface TinyDefaultOptions {
  seed?: number;
  vocabSize?: number;
  hiddenSize?: number;
  layers?: number;
  visionHidden?: number;
  visionDepth?: number;
  /** Vision patch size in pixels (14 as in Qwen2.5-VL; 28 makes a 56x56 image one merged token). */
  patchSize?: number;
  /**
   * How the vision tower starts: "random" (Gaussian, like the language model), or
   * "moments": a linear image sensor. The first 9 patch-embedding channels are, per
   * colour channel, the patch's mean and its first spatial moments along x and y
   * (where in the patch the colour sits); the merger starts as the identity in
   * GELU's near-linear range. A randomly initialised tower has no way to say where
   * things are (Qwen2.5-VL has no absolute position embedding, and a random patch
   * embedding mixes the pixels beyond recovery for a model this small); this start
   * makes object positions a nearly linear function of the image tokens, which is
   * what a pretrained tower gives a real model.
   */
  sensor?: "random" | "moments";
  /**
   * Images the moments sensor is standardized on (data-dependent initialization, as in
   * LSUV): every merger input gets zero mean and unit variance over them. Without
   * images the sensor's raw scale is used. Ignored by the random start.
   */
  calibration?: readonly RgbImage[];
  /** Std of the language model's Gaussian weights (embedding and projections); 0.02 as in Qwen2's config. */
  initStd?: number;
}

/** Text the tokenizer is trained on: every prompt template and the simulator's instruction phrasings. */
export function tokenizerCorpus(): string[] {
  const colors = ["red", "green", "blue", "yellow", "orange", "purple"];
  const out: string[] = [];
  for (const name of listTemplates()) out.push(fs.readFileSync(path.join(promptsDir(), `${name}.txt`), "utf8"));
  for (const a of colors) {
    for (const p of ["reach the {b} block", "move the gripper to the {b} block", "go to the {b} block", "pick up the {b} block", "lift the {b} block", "grasp the {b} block and lift it"]) out.push(p.replace("{b}", a));
    for (const b of colors) {
      if (a === b) continue;
      for (const p of ["put the {b} block on the {z} block", "put the {b} block in the {z} zone", "push the {b} block to the {z} zone", "slide the {b} block into the {z} zone", "push the {b} block into the {z} square"]) out.push(p.replace("{b}", a).replace("{z}", b));
    }
  }
  out.push("0 1 2 3 4 5 6 7 8 9 10 100 1000 State: Task:");
  return out;
}

export function qwen25vlConfig(o: Required<TinyDefaultOptions>, vocab: number): Record<string, unknown> {
  const heads = 4;
  const headDim = o.hiddenSize / heads;
  const q = headDim / 2; // mrope sections (temporal, height, width) must sum to head_dim / 2
  const t = Math.round(q / 4);
  const hw = (q - t) / 2;
  const ids = Object.fromEntries(QWEN_VL_SPECIALS.map((s, i) => [s, vocab + i]));
  return {
    architectures: ["Qwen2_5_VLForConditionalGeneration"],
    model_type: "qwen2_5_vl",
    vocab_size: vocab + QWEN_VL_SPECIALS.length,
    hidden_size: o.hiddenSize,
    intermediate_size: o.hiddenSize * 2,
    num_hidden_layers: o.layers,
    num_attention_heads: heads,
    num_key_value_heads: 2,
    max_position_embeddings: 4096,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    rope_scaling: { type: "mrope", rope_type: "default", mrope_section: [t, Math.floor(hw), Math.ceil(hw)] },
    tie_word_embeddings: true,
    hidden_act: "silu",
    torch_dtype: "float32",
    bos_token_id: ids["<|endoftext|>"],
    eos_token_id: ids["<|im_end|>"],
    vision_start_token_id: ids["<|vision_start|>"],
    vision_end_token_id: ids["<|vision_end|>"],
    image_token_id: ids["<|image_pad|>"],
    video_token_id: ids["<|video_pad|>"],
    vision_config: {
      depth: o.visionDepth,
      hidden_size: o.visionHidden,
      intermediate_size: o.visionHidden * 2,
      num_heads: 2,
      out_hidden_size: o.hiddenSize,
      patch_size: o.patchSize,
      spatial_merge_size: 2,
      temporal_patch_size: 2,
      window_size: 112,
      fullatt_block_indexes: [o.visionDepth - 1],
      tokens_per_second: 2,
      hidden_act: "silu",
      in_chans: 3,
    },
  };
}

/** Std of the vision tower's Gaussian weights (the random start). */
const VISION_STD = 0.02;
/** Channels of the moments sensor: (mean, x moment, y moment) per colour channel. */
const MOMENT_CHANNELS = 9;
/** The moments sensor's spatial moments are scaled up by this (an object covers a small part of a patch). */
const MOMENT_GAIN = 24;
/** The moments sensor's merger input shift: GELU(x + 3) is within a few percent of x + 3 for x > -1.5. */
const MERGER_SHIFT = 3;
/** The moments sensor's constant channel (see createTinyDefaultModel): far above the moments' own RMS (a few units). */
const SENSOR_BIAS = 50;
/** Calibration never divides by less than this (a sensor input that does not vary stays near its own scale). */
const MIN_SENSOR_STD = 0.01;

/**
 * Patch embedding (Cv, 3, 2, P, P) of the moments sensor: channel 3c is the mean of
 * colour channel c over the patch (both temporal frames), 3c+1 and 3c+2 its first
 * moments along x and y (pixel centres at -0.5..0.5 of the patch, times MOMENT_GAIN);
 * the other channels start at zero (random ones would mix the moments away in the merger).
 */
export function momentPatchEmbedding(Cv: number, P: number): Float32Array {
  const T = 2;
  const per = 3 * T * P * P;
  const w = new Float32Array(Cv * per);
  const n = T * P * P;
  for (let c = 0; c < 3; c++) {
    for (let t = 0; t < T; t++) {
      for (let y = 0; y < P; y++) {
        for (let x = 0; x < P; x++) {
          const i = ((c * T + t) * P + y) * P + x;
          w[3 * c * per + i] = 1 / n;
          w[(3 * c + 1) * per + i] = (MOMENT_GAIN * ((x + 0.5) / P - 0.5)) / n;
          w[(3 * c + 2) * per + i] = (MOMENT_GAIN * ((y + 0.5) / P - 0.5)) / n;
        }
      }
    }
  }
  return w;
}

/**
 * Mean and std of every merger input (slot k of the 2x2 merge times Cv channels) of
 * the moments sensor over the calibration images' patches; mean 0 and std 1 when
 * there are none. The tower up to the merger is the patch embedding here (zero
 * residual branches, RMSNorm a fixed scale), so the inputs are the moments themselves.
 */
function sensorStatistics(images: readonly RgbImage[], Cv: number, cfg: VisionProcessorConfig): { mean: Float64Array; std: Float64Array } {
  const M = 4 * Cv;
  const mean = new Float64Array(M);
  const std = new Float64Array(M).fill(1);
  if (images.length === 0) return { mean, std };
  const w = momentPatchEmbedding(Cv, cfg.patchSize);
  const sum = new Float64Array(M);
  const sq = new Float64Array(M);
  let n = 0;
  for (const img of images) {
    const pr = preprocessImage(img, cfg);
    const D = pr.patchDim;
    const patches = pr.pixels.length / D;
    for (let p = 0; p < patches; p++) {
      const k = p % 4; // patches come merge group by merge group
      for (let ch = 0; ch < MOMENT_CHANNELS; ch++) {
        let v = 0;
        for (let d = 0; d < D; d++) v += (w[ch * D + d] as number) * (pr.pixels[p * D + d] as number);
        sum[k * Cv + ch] = (sum[k * Cv + ch] as number) + v;
        sq[k * Cv + ch] = (sq[k * Cv + ch] as number) + v * v;
      }
      if (k === 3) n++;
    }
  }
  for (let i = 0; i < M; i++) {
    mean[i] = (sum[i] as number) / n;
    std[i] = Math.max(MIN_SENSOR_STD, Math.sqrt(Math.max(0, (sq[i] as number) / n - (mean[i] as number) ** 2)));
  }
  return { mean, std };
}

/** Create the tiny default model directory (idempotent for a seed). */
export function createTinyDefaultModel(dir: string, options: TinyDefaultOptions = {}): string {
  const o: Required<TinyDefaultOptions> = { seed: 0, vocabSize: 1024, hiddenSize: 64, layers: 2, visionHidden: 32, visionDepth: 2, patchSize: 14, sensor: "random", calibration: [], initStd: 0.02, ...options };
  // the moments and one constant channel (see SENSOR_BIAS)
  if (o.sensor === "moments" && o.visionHidden < MOMENT_CHANNELS + 1) throw new VlaError("CONFIG_INVALID", `the moments sensor needs visionHidden >= ${MOMENT_CHANNELS + 1}, got ${o.visionHidden}`, `pass visionHidden of at least ${MOMENT_CHANNELS + 1}`);
  fs.mkdirSync(dir, { recursive: true });
  const corpus = tokenizerCorpus();
  const bpe = trainBpe([...corpus, ...corpus], o.vocabSize);
  saveBpeTokenizer(dir, bpe, fs.readFileSync(path.join(promptsDir(), "chat-templates", "qwen2-vl.jinja"), "utf8"));
  const config = qwen25vlConfig(o, bpe.vocab.size);
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(config, null, 2) + "\n");
  const pp: VisionProcessorConfig = { ...QWEN25VL_PROCESSOR, patchSize: o.patchSize, minPixels: Math.max(QWEN25VL_PROCESSOR.minPixels, (o.patchSize * QWEN25VL_PROCESSOR.mergeSize) ** 2) };
  const preprocessor = {
    image_processor_type: "Qwen2VLImageProcessor",
    processor_class: "Qwen2_5_VLProcessor",
    patch_size: pp.patchSize,
    temporal_patch_size: pp.temporalPatchSize,
    merge_size: pp.mergeSize,
    min_pixels: pp.minPixels,
    max_pixels: pp.maxPixels,
    image_mean: pp.mean,
    image_std: pp.std,
  };
  fs.writeFileSync(path.join(dir, "preprocessor_config.json"), JSON.stringify(preprocessor, null, 2) + "\n");
  const V = config.vocab_size as number;
  const C = o.hiddenSize;
  const F = C * 2;
  const hd = C / 4;
  const r = new Rng(o.seed);
  const tensors: Array<{ name: string; shape: number[]; data: Float32Array }> = [];
  const mat = (name: string, shape: number[], std: number) => tensors.push({ name, shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r.gaussian(std)) });
  const ones = (name: string, n: number) => tensors.push({ name, shape: [n], data: new Float32Array(n).fill(1) });
  const zeros = (name: string, n: number) => tensors.push({ name, shape: [n], data: new Float32Array(n) });
  const std = o.initStd;
  mat("model.language_model.embed_tokens.weight", [V, C], std);
  for (let l = 0; l < o.layers; l++) {
    const p = `model.language_model.layers.${l}.`;
    ones(p + "input_layernorm.weight", C);
    mat(p + "self_attn.q_proj.weight", [4 * hd, C], std);
    zeros(p + "self_attn.q_proj.bias", 4 * hd);
    mat(p + "self_attn.k_proj.weight", [2 * hd, C], std);
    zeros(p + "self_attn.k_proj.bias", 2 * hd);
    mat(p + "self_attn.v_proj.weight", [2 * hd, C], std);
    zeros(p + "self_attn.v_proj.bias", 2 * hd);
    mat(p + "self_attn.o_proj.weight", [C, 4 * hd], std);
    ones(p + "post_attention_layernorm.weight", C);
    mat(p + "mlp.gate_proj.weight", [F, C], std);
    mat(p + "mlp.up_proj.weight", [F, C], std);
    mat(p + "mlp.down_proj.weight", [C, F], std);
  }
  ones("model.language_model.norm.weight", C);
  const vc = config.vision_config as { hidden_size: number; intermediate_size: number; depth: number };
  const Cv = vc.hidden_size;
  const Fv = vc.intermediate_size;
  const P = o.patchSize;
  if (o.sensor === "moments") tensors.push({ name: "model.visual.patch_embed.proj.weight", shape: [Cv, 3, 2, P, P], data: momentPatchEmbedding(Cv, P) });
  else mat("model.visual.patch_embed.proj.weight", [Cv, 3, 2, P, P], VISION_STD);
  for (let b = 0; b < vc.depth; b++) {
    const p = `model.visual.blocks.${b}.`;
    ones(p + "norm1.weight", Cv);
    mat(p + "attn.qkv.weight", [3 * Cv, Cv], VISION_STD);
    zeros(p + "attn.qkv.bias", 3 * Cv);
    // the moments sensor's residual branches start at zero (as in ReZero / Fixup): the blocks pass the moments through
    mat(p + "attn.proj.weight", [Cv, Cv], o.sensor === "moments" ? 0 : VISION_STD);
    zeros(p + "attn.proj.bias", Cv);
    ones(p + "norm2.weight", Cv);
    mat(p + "mlp.gate_proj.weight", [Fv, Cv], VISION_STD);
    zeros(p + "mlp.gate_proj.bias", Fv);
    mat(p + "mlp.up_proj.weight", [Fv, Cv], VISION_STD);
    zeros(p + "mlp.up_proj.bias", Fv);
    mat(p + "mlp.down_proj.weight", [Cv, Fv], o.sensor === "moments" ? 0 : VISION_STD);
    if (o.sensor === "moments" && b === vc.depth - 1) {
      // a constant last channel that dominates every patch's RMS, so that the merger's RMSNorm is a fixed scale
      const bias = new Float32Array(Cv);
      bias[Cv - 1] = SENSOR_BIAS;
      tensors.push({ name: p + "mlp.down_proj.bias", shape: [Cv], data: bias });
    } else zeros(p + "mlp.down_proj.bias", Cv);
  }
  if (o.sensor === "moments") {
    // undo that fixed scale on the sensor channels; the constant channel stops here
    const w = new Float32Array(Cv).fill(SENSOR_BIAS / Math.sqrt(Cv));
    w[Cv - 1] = 0;
    tensors.push({ name: "model.visual.merger.ln_q.weight", shape: [Cv], data: w });
    // each sensor input standardized (on the calibration images, when given) into GELU at
    // +MERGER_SHIFT, where it is near-linear; a random projection out; the shift taken back off
    const M = 4 * Cv;
    const { mean, std: sd } = sensorStatistics(o.calibration, Cv, pp);
    const w0 = new Float32Array(M * M);
    const b0 = new Float32Array(M);
    const used: number[] = [];
    for (let k = 0; k < 4; k++) {
      for (let ch = 0; ch < MOMENT_CHANNELS; ch++) {
        const i = k * Cv + ch;
        const g = 1 / (sd[i] as number);
        w0[i * M + i] = g;
        b0[i] = MERGER_SHIFT - (mean[i] as number) * g;
        used.push(i);
      }
    }
    tensors.push({ name: "model.visual.merger.mlp.0.weight", shape: [M, M], data: w0 });
    tensors.push({ name: "model.visual.merger.mlp.0.bias", shape: [M], data: b0 });
    const w2 = Float32Array.from({ length: C * M }, () => r.gaussian(1 / Math.sqrt(used.length)));
    const b2 = new Float32Array(C);
    for (let j = 0; j < C; j++) for (const i of used) b2[j] = (b2[j] as number) - (w2[j * M + i] as number) * MERGER_SHIFT;
    tensors.push({ name: "model.visual.merger.mlp.2.weight", shape: [C, M], data: w2 });
    tensors.push({ name: "model.visual.merger.mlp.2.bias", shape: [C], data: b2 });
  } else {
    ones("model.visual.merger.ln_q.weight", Cv);
    mat("model.visual.merger.mlp.0.weight", [4 * Cv, 4 * Cv], VISION_STD);
    zeros("model.visual.merger.mlp.0.bias", 4 * Cv);
    mat("model.visual.merger.mlp.2.weight", [C, 4 * Cv], VISION_STD);
    zeros("model.visual.merger.mlp.2.bias", C);
  }
  writeSafetensors(path.join(dir, "model.safetensors"), tensors);
  return dir;
}
