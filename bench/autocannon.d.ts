/**
 * The part of autocannon 8's programmatic API the benchmarks use (the package ships no types).
 */
declare module 'autocannon' {
  import type { EventEmitter } from 'node:events'

  export interface Options {
    url: string
    connections?: number
    pipelining?: number
    /** Seconds. */
    duration?: number
    /** Seconds before a request counts as timed out. */
    timeout?: number
    method?: string
    headers?: Record<string, string>
    title?: string
    /** Stop after this many requests (instead of `duration`). */
    amount?: number
    /** Per-request settings; setupRequest may change the path of each request. */
    requests?: Array<{ setupRequest?: (request: RequestParams) => RequestParams }>
  }

  export interface RequestParams {
    method?: string
    path?: string
    headers?: Record<string, string>
    body?: string | Buffer
  }

  /** hdr-histogram-percentiles-obj: min, max, average, stddev and p* percentiles. */
  export interface Histogram {
    min: number
    max: number
    average: number
    stddev: number
    p2_5: number
    p50: number
    p75: number
    p90: number
    p97_5: number
    p99: number
    p99_9: number
    p99_99: number
    p99_999: number
    /** requests: completed requests; throughput: bytes received (headers included). */
    total: number
    totalCount?: number
  }

  export interface Result {
    title?: string
    url: string
    requests: Histogram
    latency: Histogram
    throughput: Histogram
    /** Seconds. */
    duration: number
    errors: number
    timeouts: number
    mismatches: number
    non2xx: number
    resets: number
    '2xx': number
    statusCodeStats: Record<string, { count: number }>
    start: Date
    finish: Date
    connections: number
    pipelining: number
  }

  export interface Instance extends EventEmitter, PromiseLike<Result> {
    stop(): void
  }

  function autocannon (options: Options): Instance
  export default autocannon
}
