/**
 * Load from wrk (one thread, N connections, a Lua script choosing a random path per request),
 * pinned with taskset to its own core; autocannon with the same random paths where wrk is not
 * installed (or BENCH_LOADGEN=autocannon). The result says which generator produced it.
 */
import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import autocannon from 'autocannon'
import { Latencies } from './load.ts'
import { cpuMeter, hasTaskset } from './processes.ts'

export type Generator = 'wrk' | 'autocannon'

export interface RandomLoad {
  /** Base URL, e.g. http://127.0.0.1:1234 */
  url: string
  /** Paths chosen uniformly at random, one per request. */
  paths: string[]
  connections: number
  durationS: number
  /** taskset CPU list for wrk ('' or undefined: not pinned). */
  cpus?: string | undefined
  /** pids whose CPU share over the run is reported (name → pid). */
  watch?: Record<string, number>
}

export interface RandomLoadResult {
  generator: Generator
  rps: number
  requests: number
  /** ms */
  p50: number
  p99: number
  max: number
  /** Non-2xx/3xx responses (wrk: status > 399). */
  non2xx: number
  /** Connect, read, write errors and timeouts. */
  errors: number
  /** Share of one core used by each watched process, and by the load generator. */
  cpu: Record<string, number | undefined>
  loadgenCpu: number | undefined
}

let wrkChecked: boolean | undefined
/** wrk on the PATH, unless BENCH_LOADGEN=autocannon. */
export function wrkAvailable (): boolean {
  if (process.env.BENCH_LOADGEN === 'autocannon') return false
  if (wrkChecked === undefined) {
    try {
      // `wrk -v` prints its version and exits 1; a missing binary throws ENOENT.
      execFileSync('wrk', ['-v'], { stdio: 'ignore' })
      wrkChecked = true
    } catch (err) {
      wrkChecked = (err as NodeJS.ErrnoException).code !== 'ENOENT'
    }
  }
  return wrkChecked
}

const dir = mkdtempSync(join(tmpdir(), 'cachegate-wrk-'))
process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
let scripts = 0

/**
 * The Lua script: requests are formatted once in init() (wrk's Host header included), then
 * request() only picks one, so the generator does no string work per request. done() prints
 * one JSON line the harness parses (latencies in µs).
 */
function luaScript (paths: string[]): string {
  const list = paths.map((p) => `  ${JSON.stringify(p)},`).join('\n')
  return `local paths = {
${list}
}
local reqs = {}
local n = #paths
function init(args)
  math.randomseed(${Date.now() % 1_000_000})
  for i = 1, n do reqs[i] = wrk.format("GET", paths[i]) end
end
function request()
  return reqs[math.random(1, n)]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('CGBENCH {"requests":%d,"durationUs":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50":%d,"p99":%d,"max":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
`
}

interface WrkSummary {
  requests: number
  durationUs: number
  connect: number
  read: number
  write: number
  status: number
  timeout: number
  p50: number
  p99: number
  max: number
}

async function runWrk (o: RandomLoad): Promise<RandomLoadResult> {
  const script = join(dir, `paths-${++scripts}.lua`)
  writeFileSync(script, luaScript(o.paths))
  const args = ['-t1', `-c${o.connections}`, `-d${o.durationS}s`, '--timeout', '10s', '-s', script, o.url]
  const pinned = o.cpus !== undefined && o.cpus !== '' && hasTaskset()
  const meters = Object.entries(o.watch ?? {}).map(([name, pid]) => [name, cpuMeter(pid)] as const)
  const child = pinned ? spawn('taskset', ['-c', o.cpus ?? '', 'wrk', ...args]) : spawn('wrk', args)
  const self = child.pid !== undefined ? cpuMeter(child.pid) : undefined
  let out = ''
  let loadgenCpu: number | undefined
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString()
    // Sample wrk's own CPU before it exits (its /proc entry goes with it).
    if (out.includes('CGBENCH') && loadgenCpu === undefined) loadgenCpu = self?.()
  })
  child.stderr.on('data', (c: Buffer) => { out += c.toString() })
  // Bounded: wrk stops itself after -d; this kills it if it does not.
  const guard = setTimeout(() => child.kill('SIGKILL'), (o.durationS + 30) * 1000)
  const cpu: Record<string, number | undefined> = {}
  const code = await new Promise<number | null>((resolve) => {
    child.once('exit', (c) => {
      for (const [name, meter] of meters) cpu[name] = meter()
      resolve(c)
    })
  })
  clearTimeout(guard)
  const line = out.split('\n').find((l) => l.startsWith('CGBENCH '))
  if (line === undefined) throw new Error(`wrk exited with ${String(code)} without a summary:\n${out.slice(-2000)}`)
  const s = JSON.parse(line.slice('CGBENCH '.length)) as WrkSummary
  const seconds = s.durationUs / 1e6
  return {
    generator: 'wrk',
    rps: seconds > 0 ? s.requests / seconds : 0,
    requests: s.requests,
    p50: s.p50 / 1000,
    p99: s.p99 / 1000,
    max: s.max / 1000,
    non2xx: s.status,
    errors: s.connect + s.read + s.write + s.timeout,
    cpu,
    loadgenCpu
  }
}

/** autocannon in this process (which the caller has pinned), a random path per request. */
export async function runAutocannon (o: RandomLoad & { amount?: number }): Promise<RandomLoadResult> {
  const meters = Object.entries(o.watch ?? {}).map(([name, pid]) => [name, cpuMeter(pid)] as const)
  const self = cpuMeter('self')
  const latencies = new Latencies()
  const pick = (): string => o.paths[Math.floor(Math.random() * o.paths.length)] ?? '/'
  const instance = autocannon({
    url: o.url,
    connections: o.connections,
    pipelining: 1,
    timeout: 10,
    ...(o.amount !== undefined ? { amount: o.amount } : { duration: o.durationS }),
    requests: [{ setupRequest: (req) => ({ ...req, path: pick() }) }]
  })
  instance.on('response', (_client: unknown, _status: number, _bytes: number, responseTime: number) => latencies.add(responseTime))
  const guard = setTimeout(() => instance.stop(), (o.durationS + 60) * 1000)
  let r
  try {
    r = await instance
  } finally {
    clearTimeout(guard)
  }
  const cpu: Record<string, number | undefined> = {}
  for (const [name, meter] of meters) cpu[name] = meter()
  const [p50 = Number.NaN, p99 = Number.NaN, max = Number.NaN] = latencies.percentiles(50, 99, 100)
  return {
    generator: 'autocannon',
    rps: r.requests.total / (r.duration > 0 ? r.duration : o.durationS),
    requests: r.requests.total,
    p50,
    p99,
    max,
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
    cpu,
    loadgenCpu: self()
  }
}

/** wrk where installed, autocannon otherwise. */
export async function randomLoad (o: RandomLoad): Promise<RandomLoadResult> {
  return wrkAvailable() ? await runWrk(o) : await runAutocannon(o)
}
