/**
 * SmolVLM2's SigLIP encoder + connector backward (vision.train), on the "split" golden model
 * (whose forward matches transformers): loss = sum(features * R) for a fixed random R, the
 * analytic gradients of the native backward against central finite differences of the
 * native forward, for a tensor of every kind (patch embedding and its bias, the position
 * table, LayerNorm weight and bias, q/k/v/out projections, MLP, post LayerNorm, connector),
 * over an image of three tiles; and the key bias's gradient is zero, as it must be. f32 central differences with e = 1e-2 on a loss of ~10: rounding noise
 * ~1e-6 / e; tolerance 3e-2 * max |grad of the tensor| + 1e-4.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { VlmModel } from "../../src/engine/vlm.js";
import { towerFdMismatches } from "../support/tower-fd.js";

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "goldens", "smolvlm", "split");

describe("SigLIP encoder backward", () => {
  it("matches finite differences of the forward for every kind of tensor", async () => {
    const vlm = VlmModel.load(dir);
    try {
      vlm.vision.setTrainable(true);
      // 20x40 -> 32x64: one row of 2 tiles, and the global image
      const img = { width: 40, height: 20, data: Uint8Array.from({ length: 40 * 20 * 3 }, (_, i) => (i * 53 + 7) % 256) };
      const processed = [vlm.preprocess(img)];
      expect(processed[0]!.grids!.length).toBe(3);
      const first = await vlm.encode(processed);
      let x = 11;
      const R = Float32Array.from(first.features, () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1);
      const loss = async (): Promise<number> => (await vlm.encode(processed)).features.reduce((a, v, i) => a + v * R[i]!, 0);
      const trained = await vlm.encode(processed, { train: true });
      expect(Array.from(trained.features)).toEqual(Array.from(first.features)); // the training forward computes the same features
      vlm.vision.zeroGrad();
      await vlm.backwardImages(R);
      const e = 1e-2;
      const names = [
        "vision_model.embeddings.patch_embedding.weight",
        "vision_model.embeddings.patch_embedding.bias",
        "vision_model.embeddings.position_embedding.weight",
        "vision_model.encoder.layers.0.layer_norm1.weight",
        "vision_model.encoder.layers.0.layer_norm1.bias",
        "vision_model.encoder.layers.0.self_attn.q_proj.weight",
        "vision_model.encoder.layers.0.self_attn.q_proj.bias",
        "vision_model.encoder.layers.0.self_attn.k_proj.weight",
        "vision_model.encoder.layers.1.self_attn.v_proj.weight",
        "vision_model.encoder.layers.1.self_attn.out_proj.bias",
        "vision_model.encoder.layers.1.layer_norm2.weight",
        "vision_model.encoder.layers.1.mlp.fc1.weight",
        "vision_model.encoder.layers.1.mlp.fc2.bias",
        "vision_model.post_layernorm.weight",
        "vision_model.post_layernorm.bias",
        "connector.modality_projection.proj.weight",
      ];
      expect(await towerFdMismatches(vlm, names, loss, e, 1e-4)).toEqual([]);
      // a key bias shifts every score of a query alike, which softmax ignores: its gradient is zero
      const kb = vlm.vision.getParamGrad("vision_model.encoder.layers.0.self_attn.k_proj.bias").reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      const qb = vlm.vision.getParamGrad("vision_model.encoder.layers.0.self_attn.q_proj.bias").reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      expect(kb).toBeLessThan(1e-4 * qb);
    } finally {
      vlm.dispose();
    }
  });
});
