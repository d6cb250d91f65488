/**
 * Prometheus text-format metrics. Labels come from fixed sets only (the server's routes,
 * anything else "other"; the status codes it answers), so no request can grow them.
 */
import type { SchedulerStats } from "./scheduler.js";

const BUCKETS_MS = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000];

/** The routes the server serves: the only values of the route label besides "other". */
export const ROUTES = ["/health", "/metrics", "/openapi.json", "/v1/act", "/predict_base64", "/predict_base64_stream"] as const;
export type RouteLabel = (typeof ROUTES)[number] | "other";

export function routeLabel(pathname: string): RouteLabel {
  return (ROUTES as readonly string[]).includes(pathname) ? (pathname as RouteLabel) : "other";
}

/** Status codes the server answers; any other is counted as "other". */
const CODES = new Set([200, 400, 401, 404, 405, 413, 422, 499, 500, 503, 504]);

export class Metrics {
  private readonly requests = new Map<string, number>();
  private readonly buckets = new Array<number>(BUCKETS_MS.length + 1).fill(0);
  private latencySum = 0;
  private latencyCount = 0;
  tokens = 0;
  modelCalls = 0;
  forcedTokens = 0;

  request(route: RouteLabel, status: number, ms: number): void {
    const key = `route="${route}",code="${CODES.has(status) ? status : "other"}"`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    let i = 0;
    while (i < BUCKETS_MS.length && ms > (BUCKETS_MS[i] as number)) i++;
    this.buckets[i] = (this.buckets[i] as number) + 1;
    this.latencySum += ms / 1000;
    this.latencyCount++;
  }

  render(queueDepth: number, s: SchedulerStats): string {
    const lines: string[] = [];
    const counter = (name: string, help: string, v: number): void => void lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name} ${v}`);
    lines.push("# HELP vlatext_requests_total HTTP requests by route and status code.", "# TYPE vlatext_requests_total counter");
    for (const [k, v] of this.requests) lines.push(`vlatext_requests_total{${k}} ${v}`);
    lines.push("# HELP vlatext_request_duration_seconds Request latency.", "# TYPE vlatext_request_duration_seconds histogram");
    let cum = 0;
    BUCKETS_MS.forEach((b, i) => {
      cum += this.buckets[i] as number;
      lines.push(`vlatext_request_duration_seconds_bucket{le="${b / 1000}"} ${cum}`);
    });
    cum += this.buckets[BUCKETS_MS.length] as number;
    lines.push(`vlatext_request_duration_seconds_bucket{le="+Inf"} ${cum}`, `vlatext_request_duration_seconds_sum ${this.latencySum}`, `vlatext_request_duration_seconds_count ${this.latencyCount}`);
    counter("vlatext_generated_tokens_total", "Tokens generated for answered requests.", this.tokens);
    counter("vlatext_model_calls_total", "Forward passes.", this.modelCalls);
    counter("vlatext_forced_tokens_total", "Tokens appended by jump-forward.", this.forcedTokens);
    counter("vlatext_batches_total", "Batches run (one vision-tower call and one batched generation each).", s.batches);
    lines.push("# HELP vlatext_batch_size Requests per batch.", "# TYPE vlatext_batch_size histogram");
    let total = 0;
    let sum = 0;
    for (const le of [1, 2, 4, 8, 16, 32, 64]) {
      let n = 0;
      for (const [size, count] of s.batchSizes) if (size <= le) n += count;
      lines.push(`vlatext_batch_size_bucket{le="${le}"} ${n}`);
    }
    for (const [size, count] of s.batchSizes) {
      total += count;
      sum += size * count;
    }
    lines.push(`vlatext_batch_size_bucket{le="+Inf"} ${total}`, `vlatext_batch_size_sum ${sum}`, `vlatext_batch_size_count ${total}`);
    counter("vlatext_cancelled_total", "Requests cancelled because their client went away (queued or mid-generation).", s.cancelled);
    counter("vlatext_deadline_exceeded_total", "Requests stopped at their deadline.", s.deadlines);
    counter("vlatext_refused_total", "Requests refused because the queue was full (503).", s.refused);
    counter("vlatext_wasted_tokens_total", "Tokens generated for requests that were then cancelled or timed out.", s.wastedTokens);
    lines.push("# HELP vlatext_queue_depth Requests waiting or running.", "# TYPE vlatext_queue_depth gauge", `vlatext_queue_depth ${queueDepth}`);
    return lines.join("\n") + "\n";
  }
}
