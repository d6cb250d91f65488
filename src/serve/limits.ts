/**
 * What one request may ask of the server: every field has a bound, checked before any
 * work (images from their headers, before decoding). With the defaults, one request
 * holds at most ~16 MiB of body plus its decoded images (at most 4 Mpx, 12 MiB of RGB)
 * and their preprocessed patches, and the model for at most its deadline.
 */
import { z } from "zod";

export interface ServerLimits {
  /** Request body bytes (default 16 MiB); beyond it, 413 (also for chunked bodies). */
  maxBodyBytes: number;
  /** Instruction characters (default 4000); the prompt is also checked against the model's context. */
  maxInstructionChars: number;
  /** Camera images per request (default 8). */
  maxImages: number;
  /** Pixels per image side (default 1024): policies are trained on a few hundred. */
  maxImageSide: number;
  /** Pixels of all a request's images together (default 4 Mpx). */
  maxRequestPixels: number;
  /** State values (default 256). */
  maxStateLength: number;
}

export const DEFAULT_LIMITS: ServerLimits = {
  maxBodyBytes: 16 * 1024 * 1024,
  maxInstructionChars: 4000,
  maxImages: 8,
  maxImageSide: 1024,
  maxRequestPixels: 4 * 1024 * 1024,
  maxStateLength: 256,
};

const b64 = (limits: ServerLimits) =>
  z
    .string()
    .min(1)
    .max(limits.maxBodyBytes)
    .regex(/^[A-Za-z0-9+/=\s]*$/, "is not base64");

export function imageSchema(limits: ServerLimits) {
  const side = z.number().int().min(1).max(limits.maxImageSide, `must be at most ${limits.maxImageSide} (the server's --max-image-side)`);
  return z.union([z.object({ png: b64(limits) }).strict(), z.object({ jpeg: b64(limits) }).strict(), z.object({ rgb: b64(limits), width: side, height: side }).strict()]);
}
export type RequestImage = z.infer<ReturnType<typeof imageSchema>>;

const instruction = (limits: ServerLimits) => z.string().max(limits.maxInstructionChars, `must be at most ${limits.maxInstructionChars} characters`);
const state = (limits: ServerLimits) => z.array(z.number().finite()).max(limits.maxStateLength, `must hold at most ${limits.maxStateLength} values`);

/** POST /v1/act. */
export function actBodySchema(limits: ServerLimits) {
  return z
    .object({
      instruction: instruction(limits).trim().min(1, "must not be empty"),
      images: z.array(imageSchema(limits)).max(limits.maxImages, `at most ${limits.maxImages} images`).default([]),
      state: state(limits).min(1, "must not be empty when given").optional(),
      session: z.string().min(1).max(128).regex(/^[\w.:-]+$/, "use letters, digits, '_', '.', ':' or '-'").optional(),
      temperature: z.number().min(0).max(5).optional(),
      seed: z.number().int().min(0).max(2 ** 31 - 1).optional(),
      /** Stream NDJSON: one line per timestep as soon as it is decoded, then a final line. */
      stream: z.boolean().default(false),
    })
    .strict();
}
export type ActBody = z.infer<ReturnType<typeof actBodySchema>>;

/**
 * VLA-0's request (rv_train/deploy/data_models.py, pydantic So100Base64DataModel):
 * base64 .npy images, state, optional instr. Like pydantic's default model, unknown
 * fields are ignored.
 */
export function vla0BodySchema(limits: ServerLimits) {
  return z.object({
    base64_rgb: z.array(b64(limits)).min(1).max(limits.maxImages, `at most ${limits.maxImages} images`),
    state: state(limits),
    instr: instruction(limits).nullable().optional(),
  });
}
export type Vla0Body = z.infer<ReturnType<typeof vla0BodySchema>>;
