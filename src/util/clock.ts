/**
 * A monotonic clock in milliseconds, for durations and rate limits (never for dates).
 * `process.hrtime()` costs what `performance.now()` costs per call, but the first
 * `performance.now()` loads perf_hooks (~1.5 ms of a cold start).
 */
export function monotonicMs(): number {
  const [seconds, nanoseconds] = process.hrtime();
  return seconds * 1e3 + nanoseconds / 1e6;
}
