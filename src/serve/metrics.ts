/** Prometheus text-format metrics: counters, a gauge and a latency histogram. */

const BUCKETS_MS = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

export class Metrics {
  private readonly requests = new Map<string, number>();
  private readonly buckets = new Array<number>(BUCKETS_MS.length + 1).fill(0);
  private latencySum = 0;
  private latencyCount = 0;
  tokens = 0;
  modelCalls = 0;
  forcedTokens = 0;
  queueDepth = 0;

  request(route: string, status: number, ms: number): void {
    const key = `route="${route}",code="${status}"`;
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    let i = 0;
    while (i < BUCKETS_MS.length && ms > (BUCKETS_MS[i] as number)) i++;
    this.buckets[i] = (this.buckets[i] as number) + 1;
    this.latencySum += ms / 1000;
    this.latencyCount++;
  }

  render(): string {
    const lines: string[] = [];
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
    lines.push("# HELP vlatext_generated_tokens_total Tokens generated.", "# TYPE vlatext_generated_tokens_total counter", `vlatext_generated_tokens_total ${this.tokens}`);
    lines.push("# HELP vlatext_model_calls_total Forward passes.", "# TYPE vlatext_model_calls_total counter", `vlatext_model_calls_total ${this.modelCalls}`);
    lines.push("# HELP vlatext_forced_tokens_total Tokens appended by jump-forward.", "# TYPE vlatext_forced_tokens_total counter", `vlatext_forced_tokens_total ${this.forcedTokens}`);
    lines.push("# HELP vlatext_queue_depth Requests waiting or running.", "# TYPE vlatext_queue_depth gauge", `vlatext_queue_depth ${this.queueDepth}`);
    return lines.join("\n") + "\n";
  }
}
