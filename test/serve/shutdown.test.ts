/**
 * Graceful shutdown of the real `vlatext serve` process: SIGTERM / SIGINT with requests in
 * flight lets them finish (within --grace), refuses new connections, frees the model after
 * its last call and exits 0; with --grace 0 the running requests are cancelled instead.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { beforeAll, describe, expect, it } from "vitest";
import { post, postStream } from "../support/http.js";
import { writeTinyVlmPolicy } from "../support/tiny-vlm-policy.js";

let slowPolicy: string;
beforeAll(() => {
  // ~0.1-0.2 s a chunk: long enough to signal the server while one runs
  slowPolicy = writeTinyVlmPolicy({ hiddenSize: 256, layers: 4 });
});

async function serve(extra: string[] = []): Promise<{ child: ChildProcess; url: string; stderr: () => string; exit: Promise<number | null> }> {
  const child = spawn(process.execPath, ["--import", "tsx", "test/support/cli-entry.ts", "serve", "--model", slowPolicy, "--port", "0", ...extra], { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /on (http:\/\/[^ ]+) /.exec(out);
      if (m) resolve(m[1]!);
    });
    void exit.then((code) => reject(new Error(`serve exited early (${code}): ${err}`)));
    setTimeout(() => reject(new Error(`no server URL in time: ${out} ${err}`)), 60_000);
  });
  return { child, url, stderr: () => err, exit };
}

describe("vlatext serve shutdown", () => {
  it("SIGTERM during requests: they finish, new connections are refused, the process exits 0", async () => {
    const s = await serve();
    const others = Array.from({ length: 4 }, (_, i) => post(s.url, "/v1/act", { instruction: `reach the block ${i}` }));
    let signalled = false;
    const stream = await postStream(s.url, "/v1/act", { instruction: "stack the blocks", stream: true }, {
      onLine: () => {
        if (signalled) return;
        signalled = true;
        s.child.kill("SIGTERM");
      },
    });
    expect(signalled).toBe(true);
    // the request that was streaming when the signal came finished normally
    expect(stream.lines.filter((l) => l.type === "timestep")).toHaveLength(8);
    expect(stream.lines[stream.lines.length - 1].type).toBe("done");
    for (const r of await Promise.all(others)) expect(r.status).toBe(200);
    expect(await s.exit).toBe(0);
    await expect(fetch(s.url + "/health")).rejects.toThrow();
    expect(s.stderr()).toMatch(/SIGTERM: shutting down/);
    expect(s.stderr()).toMatch(/stopped/);
    expect(s.stderr()).not.toMatch(/Error|busy|still running/);
  });

  it("SIGINT with --grace 0: the running request is cancelled (a last error line), the process exits 0", async () => {
    const s = await serve(["--grace", "0"]);
    let signalled = false;
    const stream = await postStream(s.url, "/v1/act", { instruction: "stack the blocks", stream: true }, {
      onLine: () => {
        if (!signalled) s.child.kill("SIGINT");
        signalled = true;
      },
    });
    expect(await s.exit).toBe(0);
    const last = stream.lines[stream.lines.length - 1];
    expect(last).toMatchObject({ type: "error", status: 503, code: "SERVER_CLOSING" });
    expect(stream.lines.filter((l) => l.type === "timestep").length).toBeLessThan(8);
    expect(s.stderr()).toMatch(/SIGINT: shutting down/);
  });
});
