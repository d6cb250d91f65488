/** The server's OpenAPI 3.1 document (its limits are the running server's). */
import type { ServerLimits } from "./limits.js";

export function openApiDocument(limits: ServerLimits): Record<string, unknown> {
  const error = { type: "object", properties: { error: { type: "string" }, code: { type: "string", description: "stable code, e.g. FIELD_INVALID, IMAGE_TOO_LARGE, SERVER_BUSY, DEADLINE_EXCEEDED" } }, required: ["error", "code"] };
  const json = (schema: unknown) => ({ "application/json": { schema } });
  const b64 = { type: "string", contentEncoding: "base64" };
  const side = { type: "integer", minimum: 1, maximum: limits.maxImageSide };
  const image = {
    description: `at most ${limits.maxImageSide} pixels per side (checked from the PNG/JPEG header before decoding)`,
    oneOf: [
      { type: "object", properties: { png: b64 }, required: ["png"], additionalProperties: false },
      { type: "object", properties: { jpeg: b64 }, required: ["jpeg"], additionalProperties: false },
      { type: "object", properties: { rgb: b64, width: side, height: side }, required: ["rgb", "width", "height"], additionalProperties: false },
    ],
  };
  const errors = {
    400: { description: "bad input (named in error)", content: json(error) },
    401: { description: "missing or wrong bearer token", content: json(error) },
    413: { description: `body over ${limits.maxBodyBytes} bytes (declared or chunked)`, content: json(error) },
    422: { description: "invalid fields, an image over the size limit, or a prompt over the model's context (named in error)", content: json(error) },
    503: { description: "queue full or shutting down; retry after Retry-After seconds", headers: { "Retry-After": { schema: { type: "integer" } } }, content: json(error) },
    504: { description: "the request ran past its deadline (queue time included)", content: json(error) },
  };
  const state = { type: "array", items: { type: "number" }, maxItems: limits.maxStateLength };
  const vla0Body = {
    type: "object",
    required: ["base64_rgb", "state"],
    description: "NVlabs/vla0 rv_train/deploy So100Base64DataModel; unknown fields are ignored, as pydantic does",
    properties: {
      base64_rgb: { type: "array", minItems: 1, maxItems: limits.maxImages, items: { ...b64, description: `np.save() of an (H, W, 3) uint8 image (npy format 1.0-3.0), H and W at most ${limits.maxImageSide}; cameras are tiled side by side` } },
      state,
      instr: { type: ["string", "null"], maxLength: limits.maxInstructionChars, description: "the instruction; null or absent: the server's --instruction" },
    },
  };
  const chunk = { type: "array", description: "H timesteps of D numbers in robot units", items: { type: "array", items: { type: "number" } } };
  return {
    openapi: "3.1.0",
    info: { title: "vlatext inference server", version: "0.1.0", description: "Action chunks from a VLA-0-style policy: integer text under a grammar, parsed and denormalized." },
    paths: {
      "/health": { get: { summary: "Liveness and model summary (no token needed)", responses: { 200: { description: "{status: 'ok', uptimeS, queueDepth, batches, sessions, horizon, dims}" } } } },
      "/metrics": { get: { summary: "Prometheus metrics", responses: { 200: { description: "text/plain exposition format; route labels are the routes here or 'other'" } } } },
      "/openapi.json": { get: { summary: "This document", responses: { 200: { description: "OpenAPI 3.1" } } } },
      "/v1/act": {
        post: {
          summary: "Predict an action chunk",
          requestBody: {
            required: true,
            content: json({
              type: "object",
              required: ["instruction"],
              additionalProperties: false,
              properties: {
                instruction: { type: "string", minLength: 1, maxLength: limits.maxInstructionChars },
                images: { type: "array", items: image, maxItems: limits.maxImages },
                state,
                session: { type: "string", maxLength: 128, description: "enables temporal ensembling (and, for a policy trained with history frames, gives it this session's earlier images); `session.actions` holds the next executeK actions" },
                temperature: { type: "number", minimum: 0, maximum: 5 },
                seed: { type: "integer", minimum: 0 },
                stream: { type: "boolean", description: "NDJSON: {type:'timestep', t, action, normalized, ms} per timestep as soon as it is decoded, then {type:'done', ...the plain answer}; an error after the first line is a last line {type:'error', status, code, error}" },
              },
            }),
          },
          responses: { 200: { description: "{names, chunk (H x D, robot units), normalized, text, imagesUsed, timings, session?}" }, ...errors },
        },
      },
      "/predict_base64": {
        post: {
          summary: "VLA-0 compatible: base64 .npy images, state, instr -> H x D actions",
          requestBody: { required: true, content: json(vla0Body) },
          responses: { 200: { description: "the chunk", content: json(chunk) }, ...errors },
        },
      },
      "/predict_base64_stream": {
        post: {
          summary: "VLA-0 compatible, streamed: one NDJSON line per timestep as soon as it is decoded",
          requestBody: { required: true, content: json(vla0Body) },
          responses: {
            200: {
              description:
                'application/x-ndjson: {"index": t, "value": [[D numbers]]} for t = 0..H-1 (the same actions /predict_base64 answers), then {"time_taken": seconds}. An error after the first line ends the stream with {"status", "code", "error"} and no time_taken line.',
            },
            ...errors,
          },
        },
      },
    },
  };
}
