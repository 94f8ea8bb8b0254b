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

async function cannon (url: string, connections: number, durationS: number): Promise<Result> {
  const instance = autocannon({ url, connections, duration: durationS, pipelining: 1, timeout: 10 })
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
  const r = await cannon(url, settings.connections, settings.durationS)
  const cpu: Record<string, number | undefined> = {}
  for (const [name, meter] of meters) cpu[name] = meter()
  const loadgenCpu = self()
  const requests = r.totalCompletedRequests
  return {
    rps: requests / (r.duration > 0 ? r.duration : settings.durationS),
    p50: r.latency.p50,
    p99: r.latency.p99,
    requests,
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    bytesPerResponse: requests > 0 ? r.totalBytes / requests : 0,
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
