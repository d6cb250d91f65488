/** The server's OpenAPI 3.1 document. */
export function openApiDocument(): Record<string, unknown> {
  const error = { type: "object", properties: { error: { type: "string" }, code: { type: "string" } }, required: ["error"] };
  const image = {
    oneOf: [
      { type: "object", properties: { png: { type: "string", contentEncoding: "base64" } }, required: ["png"], additionalProperties: false },
      { type: "object", properties: { jpeg: { type: "string", contentEncoding: "base64" } }, required: ["jpeg"], additionalProperties: false },
      { type: "object", properties: { rgb: { type: "string", contentEncoding: "base64" }, width: { type: "integer" }, height: { type: "integer" } }, required: ["rgb", "width", "height"], additionalProperties: false },
    ],
  };
  const errors = { 400: { description: "bad input", content: { "application/json": { schema: error } } }, 401: { description: "missing or wrong bearer token" }, 413: { description: "body too large" }, 422: { description: "invalid fields (named in error)" }, 503: { description: "queue full; retry after Retry-After seconds" } };
  return {
    openapi: "3.1.0",
    info: { title: "vlatext inference server", version: "0.1.0", description: "Action chunks from a VLA-0-style policy: integer text under a grammar, parsed and denormalized." },
    paths: {
      "/health": { get: { summary: "Liveness and model summary", responses: { 200: { description: "ok" } } } },
      "/metrics": { get: { summary: "Prometheus metrics", responses: { 200: { description: "text/plain exposition format" } } } },
      "/openapi.json": { get: { summary: "This document", responses: { 200: { description: "OpenAPI 3.1" } } } },
      "/v1/act": {
        post: {
          summary: "Predict an action chunk",
          requestBody: {
            required: true,
            content: {
              "application/json": {
                schema: {
                  type: "object",
                  required: ["instruction"],
                  additionalProperties: false,
                  properties: {
                    instruction: { type: "string" },
                    images: { type: "array", items: image, maxItems: 8 },
                    state: { type: "array", items: { type: "number" } },
                    session: { type: "string", description: "enables temporal ensembling; `session.actions` holds the next executeK actions" },
                    temperature: { type: "number", minimum: 0 },
                    seed: { type: "integer", minimum: 0 },
                  },
                },
              },
            },
          },
          responses: { 200: { description: "chunk (H x D, robot units), normalized chunk, raw text, timings, and session actions" }, ...errors },
        },
      },
      "/predict_base64": {
        post: {
          summary: "VLA-0 compatible: base64 .npy images, state, instr -> H x D actions",
          requestBody: { required: true, content: { "application/json": { schema: { type: "object", required: ["base64_rgb", "state"], properties: { base64_rgb: { type: "array", items: { type: "string" } }, state: { type: "array", items: { type: "number" } }, instr: { type: ["string", "null"] } } } } } },
          responses: { 200: { description: "array of H arrays of D numbers" }, ...errors },
        },
      },
    },
  };
}
