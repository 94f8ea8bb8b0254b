/**
 * Load generation with autocannon's programmatic API, in this process, with the CPU used by
 * the server(s) under test and by this process over the measured window.
 */
import autocannon, { type Result } from 'autocannon'
import { request } from 'undici'
import { cpuMeter } from './processes.ts'

export interface LoadSettings {
  connections: number
  /** Seconds measured. */
  durationS: number
  /** Seconds of load before the measured window, discarded. */
  warmupS: number
}

export interface LoadResult {
  rps: number
  /** ms */
  p50: number
  p99: number
  requests: number
  non2xx: number
  errors: number
  timeouts: number
  /** Bytes per response, headers included (from autocannon's byte count). */
  bytesPerResponse: number
  /** Share of one core used by each watched process during the measured window. */
  cpu: Record<string, number | undefined>
  /** Share of one core used by this process (the load generator). */
  loadgenCpu: number | undefined
}

/**
 * Response times as autocannon measures them (float ms from process.hrtime). autocannon's own
 * histogram keeps whole milliseconds, too coarse for a server answering in under one.
 */
export class Latencies {
  #values = new Float64Array(1 << 16)
  #n = 0
  /** Memory bound: beyond this many samples, every later one is dropped. */
  static readonly MAX = 1 << 24

  add (ms: number): void {
    if (this.#n === this.#values.length) {
      if (this.#n >= Latencies.MAX) return
      const next = new Float64Array(this.#values.length * 2)
      next.set(this.#values)
      this.#values = next
    }
    this.#values[this.#n++] = ms
  }

  get count (): number {
    return this.#n
  }

  /** Percentiles (0-100) by nearest rank. */
  percentiles (...ps: number[]): number[] {
    const sorted = this.#values.slice(0, this.#n).sort()
    return ps.map((p) => sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1))] ?? Number.NaN)
  }
}

async function cannon (url: string, connections: number, durationS: number, latencies?: Latencies): Promise<Result> {
  const instance = autocannon({ url, connections, duration: durationS, pipelining: 1, timeout: 10 })
  if (latencies !== undefined) {
    instance.on('response', (_client: unknown, _status: number, _bytes: number, responseTime: number) => latencies.add(responseTime))
  }
  // Bounded: autocannon stops itself after `duration`; this is the fallback if it does not.
  const guard = setTimeout(() => instance.stop(), (durationS + 30) * 1000)
  try {
    return await instance
  } finally {
    clearTimeout(guard)
  }
}

/** Warm-up, then the measured run; `watch` names the pids whose CPU is reported. */
export async function measure (url: string, settings: LoadSettings, watch: Record<string, number>): Promise<LoadResult> {
  if (settings.warmupS > 0) await cannon(url, settings.connections, settings.warmupS)
  const meters = Object.entries(watch).map(([name, pid]) => [name, cpuMeter(pid)] as const)
  const self = cpuMeter('self')
  const latencies = new Latencies()
  const r = await cannon(url, settings.connections, settings.durationS, latencies)
  const cpu: Record<string, number | undefined> = {}
  for (const [name, meter] of meters) cpu[name] = meter()
  const loadgenCpu = self()
  const requests = r.requests.total
  const [p50 = Number.NaN, p99 = Number.NaN] = latencies.percentiles(50, 99)
  return {
    rps: requests / (r.duration > 0 ? r.duration : settings.durationS),
    p50,
    p99,
    requests,
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    bytesPerResponse: requests > 0 ? r.throughput.total / requests : 0,
    cpu,
    loadgenCpu
  }
}

export interface Sample {
  status: number
  headers: Record<string, string>
  body: Buffer
}

/** One GET, fully read; header values joined as they would be on the wire. */
export async function sample (url: string, headers: Record<string, string> = {}): Promise<Sample> {
  const res = await request(url, { method: 'GET', headers, headersTimeout: 10_000, bodyTimeout: 10_000 })
  const body = Buffer.from(await res.body.arrayBuffer())
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(res.headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value
  }
  return { status: res.statusCode, headers: out, body }
}

/** "cachegate; hit; ttl=3599" counts as a hit; anything else (fwd=…, no field) does not. */
export function isHit (s: Sample): boolean {
  const field = s.headers['cache-status'] ?? ''
  return s.status === 200 && /^cachegate; hit(;|$)/.test(field) && !field.includes('fwd=')
}
