/**
 * Hit path at the limit (issue 12): the measurement the issue describes, side by side in one run.
 *
 * 1. Many-keys hit throughput: wrk (one thread, 64 connections, a Lua script choosing one of
 *    1000 warm keys uniformly at random per request; autocannon with the same paths where wrk
 *    is missing), 2 KiB JSON bodies, the server under test pinned to one core and the load
 *    generator to the other, three interleaved rounds in rotating order, each on freshly started servers. Contenders: bare
 *    node:http answering fixed bytes (what cachegate sends on a hit), a bare Fastify route,
 *    cachegate with the memory store, with the Redis store, and with Redis + L1. Reported: req/s
 *    ratio to bare node (median of the per-round ratios, with the spread), p99 against bare
 *    node's p99.
 * 2. Bytes allocated per hit on the V8 heap, over a fixed number of requests, from the heap
 *    probe (bench/servers/heap-probe.mjs: GC profiler before/after totals).
 * 3. Heap during a hit soak (default 60 s of wrk load), sampled after a forced GC every 10 s.
 * 4. Stampede: 200 concurrent GETs on one cold key, origin latency 200 ms: client p99 against
 *    origin latency + 30 ms, the origin's request count for the key, and the gateway's CPU time
 *    per request; with BENCH_STAMPEDE_BASELINE, another build's gateways in the same rounds.
 *
 *   node --import tsx bench/limit.ts                      (npm run bench runs it last)
 *   BENCH_ONLY=stampede node --import tsx bench/limit.ts  (the stampede part alone)
 */
import { writeFileSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { startGateway, summarizeWarnings, type GatewayProc } from './lib/gateway.ts'
import { isHit, sample, type Sample } from './lib/load.ts'
import { body2k, startOrigin } from './lib/origin.ts'
import { startOriginThread, type ThreadOrigin } from './lib/origin-thread.ts'
import { RawConnection } from './lib/raw-client.ts'
import { allowedCpus, freePort, hasTaskset, pinProcessTo, ROOT, runSeconds, sleep, spawnNode, startRedis, type Proc } from './lib/processes.ts'
import { envInt, fmt, renderMarkdown, renderText, type Table } from './lib/table.ts'
import { randomLoad, runAutocannon, wrkAvailable, type RandomLoadResult } from './lib/wrk.ts'
import type { RecordedResponse } from './servers/response.ts'

export interface LimitSettings {
  durationS: number
  warmupS: number
  connections: number
  rounds: number
  keys: number
  /** Requests over which bytes allocated per hit are counted. */
  allocRequests: number
  soakS: number
  /** Which gateways get the heap soak. */
  soak: string[]
  stampedeClients: number
  stampedeDelayMs: number
  stampedeRounds: number
  /** 'stampede': only part 4 (BENCH_ONLY). */
  only: 'all' | 'stampede'
  /** Another cachegate checkout whose gateways run the same stampedes, for a before/after comparison in one run. */
  stampedeBaseline: string | undefined
  /** Which contenders take the throughput, allocation and soak parts (BENCH_LIMIT_CONTENDERS). */
  contenders: string[]
  /** Which parts run (BENCH_LIMIT_PARTS): throughput, alloc, soak, stampede. */
  parts: string[]
}

const CONTENDER_IDS = ['node', 'fastify', 'memory', 'redis', 'redis-l1']
const PART_IDS = ['throughput', 'alloc', 'soak', 'stampede']

function envList (name: string, all: string[]): string[] {
  const raw = process.env[name]
  if (raw === undefined || raw.trim() === '') return all
  const list = raw.split(',').map((s) => s.trim()).filter((s) => s !== '')
  for (const s of list) if (!all.includes(s)) throw new RangeError(`${name} lists ${all.join(', ')}; got ${JSON.stringify(s)}`)
  return list
}

export function limitSettings (): LimitSettings {
  const soak = (process.env.BENCH_LIMIT_SOAK_TARGETS ?? 'memory,redis').split(',').map((s) => s.trim()).filter((s) => s !== '')
  for (const s of soak) if (!['memory', 'redis', 'redis-l1'].includes(s)) throw new RangeError(`BENCH_LIMIT_SOAK_TARGETS lists memory, redis, redis-l1; got ${JSON.stringify(s)}`)
  const only = (process.env.BENCH_ONLY ?? '').trim()
  if (only !== '' && only !== 'all' && only !== 'stampede') throw new RangeError(`BENCH_ONLY is all or stampede; got ${JSON.stringify(only)}`)
  const baseline = (process.env.BENCH_STAMPEDE_BASELINE ?? '').trim()
  return {
    durationS: envInt('BENCH_LIMIT_DURATION', 10, 1, 600),
    warmupS: envInt('BENCH_LIMIT_WARMUP', 3, 0, 60),
    connections: envInt('BENCH_LIMIT_CONNECTIONS', 64, 1, 1000),
    rounds: envInt('BENCH_LIMIT_ROUNDS', 3, 1, 10),
    keys: envInt('BENCH_LIMIT_KEYS', 1000, 1, 100_000),
    allocRequests: envInt('BENCH_LIMIT_ALLOC_REQUESTS', 50_000, 1000, 10_000_000),
    soakS: envInt('BENCH_LIMIT_SOAK', 60, 0, 3600),
    soak,
    stampedeClients: envInt('BENCH_LIMIT_STAMPEDE_CLIENTS', 200, 1, 2000),
    stampedeDelayMs: envInt('BENCH_LIMIT_STAMPEDE_DELAY', 200, 0, 10_000),
    stampedeRounds: envInt('BENCH_LIMIT_STAMPEDE_ROUNDS', 5, 1, 50),
    only: only === 'stampede' ? 'stampede' : 'all',
    stampedeBaseline: baseline === '' ? undefined : baseline,
    contenders: envList('BENCH_LIMIT_CONTENDERS', CONTENDER_IDS),
    parts: envList('BENCH_LIMIT_PARTS', PART_IDS)
  }
}

const VOLATILE = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding'])
const PROBE = join(ROOT, 'bench', 'servers', 'heap-probe.mjs')
const PROBE_ARGS = ['--expose-gc', '--import', pathToFileURL(PROBE).href]

interface Layout { pinned: boolean, server: string, loadgen: string }

/** Server under test on the last allowed CPU, wrk and this process (origin, redis-server) on the first. */
function layout (): Layout {
  const cpus = allowedCpus()
  const first = cpus[0]
  const last = cpus[cpus.length - 1]
  if (!hasTaskset() || first === undefined || last === undefined || first === last || process.env.BENCH_NO_PIN === '1') {
    return { pinned: false, server: '', loadgen: '' }
  }
  pinProcessTo(String(first))
  return { pinned: true, server: String(last), loadgen: String(first) }
}

interface Contender {
  id: string
  name: string
  base: string
  pid: number
  probePort: number
  logs?: Proc
  redisPid?: number
  gateway: boolean
  goal?: number
}

interface Round {
  result: RandomLoadResult
  problems: string[]
}

interface ProbeStop { allocated: number, gcs: number, gcMs: number, usedHeapAfterGc: number, externalDelta: number }
interface ProbeHeap { usedHeap: number, totalHeap: number, external: number, rss: number }

async function probe<T> (port: number, what: 'start' | 'stop' | 'heap'): Promise<T> {
  const s = await sample(`http://127.0.0.1:${port}/${what}`)
  if (s.status !== 200) throw new Error(`heap probe /${what}: status ${s.status}`)
  return JSON.parse(s.body.toString()) as T
}

/** Runs `fn` over `items` with at most `limit` at a time. */
async function eachLimited<T> (items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T
      await fn(item)
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker))
}

/** Every path fetched until it is a hit (the first request fills the entry). */
async function primeAll (base: string, paths: string[]): Promise<Sample> {
  let last: Sample | undefined
  await eachLimited(paths, 16, async (path) => {
    for (let attempt = 0; attempt < 50; attempt++) {
      const s = await sample(base + path)
      if (s.status !== 200) throw new Error(`priming ${base}${path}: status ${s.status}`)
      if (isHit(s)) {
        last = s
        return
      }
    }
    throw new Error(`priming ${base}${path}: still not a hit after 50 requests`)
  })
  if (last === undefined) throw new Error(`priming ${base}: no hit`)
  return last
}

function median (xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  if (s.length === 0) return Number.NaN
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2
}

function percentile (xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  if (s.length === 0) return Number.NaN
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p / 100 * s.length) - 1))] as number
}

const MiB = 1024 * 1024
let loadAtStart = '?'
let loadAfterRounds = '?'

export interface LimitReport {
  tables: Table[]
  /** One row per goal: goal, measured, met. */
  goals: Table
}

export async function runLimit (settings: LimitSettings = limitSettings(), log: (line: string) => void = (l) => process.stderr.write(l + '\n')): Promise<LimitReport> {
  const cores = layout()
  loadAtStart = loadavg()[0]?.toFixed(2) ?? '?'
  const generator = wrkAvailable() ? 'wrk' : 'autocannon'
  if (generator === 'autocannon') log('limit: wrk not found (or BENCH_LOADGEN=autocannon): falling back to autocannon, in this process')
  const stops: Array<() => Promise<void>> = []
  const paths = Array.from({ length: settings.keys }, (_v, i) => `/items/${i}`)
  try {
    const origin = await startOrigin({ body: body2k })
    stops.push(async () => await origin.close())
    const redis = await startRedis(cores.loadgen)
    stops.push(async () => await redis.proc.stop())
    if (settings.only === 'stampede') {
      return report(settings, cores, generator, [], new Map(), new Map(), [], await stampedes(settings, cores, redis.url, stops, log))
    }

    // Fresh processes for every round: one process's JIT can settle in a fast or a slow state
    // for the whole of its life (seen with bare node:http as with the gateway: 29 against 44 µs
    // of CPU per request in two starts of the same server), so ratios over processes started
    // once would rest on a coin toss per contender. Every round starts, primes and measures a
    // new set; the last set stays up for the allocation and soak parts.
    let live: { contenders: Contender[], stop: () => Promise<void> } | undefined
    const startContenders = async (round: number): Promise<{ contenders: Contender[], stop: () => Promise<void> }> => {
      const own: Array<() => Promise<void>> = []
      // Idempotent: called when the next round starts and again by the run's own cleanup.
      const stop = async (): Promise<void> => { for (const f of own.splice(0).reverse()) await f().catch(() => undefined) }
      stops.push(stop)
      log(`limit: round ${round + 1}: starting fresh servers (server CPU ${cores.pinned ? cores.server : 'unpinned'}, load generator CPU ${cores.pinned ? cores.loadgen : 'unpinned'})`)
      const gateway = async (name: string, extra: { redisUrl?: string, keyPrefix?: string, l1?: boolean }): Promise<{ g: GatewayProc, probePort: number }> => {
        const probePort = await freePort()
        const g = await startGateway({ name, origin: origin.url, cpus: cores.server, nodeArgs: PROBE_ARGS, env: { BENCH_PROBE_PORT: String(probePort) }, ...extra })
        own.push(async () => await g.stop())
        return { g, probePort }
      }
      const memory = await gateway('cachegate/memory', {})
      const redisG = await gateway('cachegate/redis', { redisUrl: redis.url, keyPrefix: 'limit:' })
      const l1 = await gateway('cachegate/redis-l1', { redisUrl: redis.url, keyPrefix: 'limit-l1:', l1: true })
      log(`limit: priming ${settings.keys} keys on each gateway`)
      const memoryHit = await primeAll(memory.g.url, paths)
      if (settings.contenders.includes('redis')) await primeAll(redisG.g.url, paths)
      if (settings.contenders.includes('redis-l1')) await primeAll(l1.g.url, paths)

      // The reference servers answer every path with the bytes and fields of one memory-store hit.
      const recorded: RecordedResponse = { status: memoryHit.status, headers: {}, body: memoryHit.body.toString('base64') }
      for (const [k, v] of Object.entries(memoryHit.headers)) if (!VOLATILE.has(k)) recorded.headers[k] = v
      await mkdir(join(ROOT, 'bench', 'results'), { recursive: true })
      const responseFile = join(ROOT, 'bench', 'results', 'limit-response.json')
      writeFileSync(responseFile, JSON.stringify(recorded, null, 2))
      const reference = async (name: string, script: string): Promise<{ proc: Proc, port: number, probePort: number }> => {
        const port = await freePort()
        const probePort = await freePort()
        const proc = await spawnNode({ name, script, nodeArgs: PROBE_ARGS, cpus: cores.server, port, env: { ...process.env, BENCH_PORT: String(port), BENCH_RESPONSE: responseFile, BENCH_PROBE_PORT: String(probePort) } })
        own.push(async () => await proc.stop())
        return { proc, port, probePort }
      }
      const bareNode = await reference('bare node:http', 'bench/servers/bare-node.ts')
      const bareFastify = await reference('bare Fastify', 'bench/servers/bare-fastify.ts')

      const contenders = ([
        { id: 'node', name: 'bare node:http (fixed bytes)', base: `http://127.0.0.1:${bareNode.port}`, pid: bareNode.proc.pid, probePort: bareNode.probePort, gateway: false },
        { id: 'fastify', name: 'bare Fastify route', base: `http://127.0.0.1:${bareFastify.port}`, pid: bareFastify.proc.pid, probePort: bareFastify.probePort, gateway: false },
        { id: 'memory', name: 'cachegate, memory store', base: memory.g.url, pid: memory.g.proc.pid, probePort: memory.probePort, logs: memory.g.proc, gateway: true, goal: 0.85 },
        { id: 'redis', name: 'cachegate, Redis store', base: redisG.g.url, pid: redisG.g.proc.pid, probePort: redisG.probePort, logs: redisG.g.proc, redisPid: redis.proc.pid, gateway: true, goal: 0.6 },
        { id: 'redis-l1', name: 'cachegate, Redis store + L1', base: l1.g.url, pid: l1.g.proc.pid, probePort: l1.probePort, logs: l1.g.proc, redisPid: redis.proc.pid, gateway: true, goal: 0.85 }
      ] satisfies Contender[]).filter((c) => settings.contenders.includes(c.id))
      return { contenders, stop }
    }

    // 1. Throughput and latency, interleaved rounds.
    const rounds = new Map<string, Round[]>(settings.contenders.map((id) => [id, []]))
    const throughputRounds = settings.parts.includes('throughput') ? settings.rounds : 0
    for (let round = 0; round < Math.max(1, throughputRounds); round++) {
      await live?.stop()
      live = await startContenders(round)
      if (round >= throughputRounds) break
      const contenders = live.contenders
      const order = contenders.map((_c, i) => contenders[(i + round) % contenders.length] as Contender)
      for (const c of order) {
        log(`limit: round ${round + 1}/${settings.rounds}: ${c.name} (${settings.warmupS}s warm-up + ${settings.durationS}s, ${generator}, ${settings.connections} connections, ${settings.keys} keys)`)
        rounds.get(c.id)?.push(await measureOne(c, settings, paths, cores, () => origin.total()))
      }
    }
    const contenders = live?.contenders ?? []

    loadAfterRounds = loadavg()[0]?.toFixed(2) ?? '?'
    // 2. Bytes allocated per request, over a fixed number of requests.
    const alloc = new Map<string, ProbeStop & { requests: number }>()
    for (const c of settings.parts.includes('alloc') ? contenders : []) {
      log(`limit: allocation: ${c.name}, ${settings.allocRequests} requests`)
      await probe(c.probePort, 'start')
      const r = await runAutocannon({ url: c.base, paths, connections: 32, durationS: 120, amount: settings.allocRequests })
      alloc.set(c.id, { ...(await probe<ProbeStop>(c.probePort, 'stop')), requests: r.requests })
    }

    // 3. Heap during a hit soak.
    const soaks: Array<{ c: Contender, samples: ProbeHeap[], result: RandomLoadResult }> = []
    if (settings.soakS > 0 && settings.parts.includes('soak')) {
      for (const c of contenders.filter((x) => settings.soak.includes(x.id))) {
        log(`limit: soak: ${c.name}, ${settings.soakS}s of ${generator} load, heap sampled every 10 s after a full GC`)
        const samples: ProbeHeap[] = [await probe<ProbeHeap>(c.probePort, 'heap')]
        const running = randomLoad({ url: c.base, paths, connections: settings.connections, durationS: settings.soakS, cpus: cores.loadgen })
        const ticks = Math.floor(settings.soakS / 10)
        let tick = 0
        const timer = setInterval(() => {
          if (++tick > ticks) return
          probe<ProbeHeap>(c.probePort, 'heap').then((h) => samples.push(h), () => undefined)
        }, 10_000)
        const result = await running.finally(() => clearInterval(timer))
        samples.push(await probe<ProbeHeap>(c.probePort, 'heap'))
        soaks.push({ c, samples, result })
      }
    }

    return report(settings, cores, generator, contenders, rounds, alloc, soaks, settings.parts.includes('stampede') ? await stampedes(settings, cores, redis.url, stops, log) : [])
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined)
  }
}

async function measureOne (c: Contender, settings: LimitSettings, paths: string[], cores: Layout, originTotal: () => number): Promise<Round> {
  const problems: string[] = []
  const spot = [paths[0] ?? '/', paths[Math.floor(paths.length / 2)] ?? '/', paths[paths.length - 1] ?? '/']
  for (const p of spot) {
    const s = await sample(c.base + p)
    if (c.gateway && !isHit(s)) problems.push(`${p} before the run was not a hit (${s.status}, ${s.headers['cache-status'] ?? 'no cache-status'})`)
  }
  const originBefore = originTotal()
  const mark = c.logs?.mark() ?? 0
  const watch: Record<string, number> = { server: c.pid, ...(c.redisPid !== undefined ? { redis: c.redisPid } : {}) }
  if (settings.warmupS > 0) await randomLoad({ url: c.base, paths, connections: settings.connections, durationS: settings.warmupS, cpus: cores.loadgen })
  const result = await randomLoad({ url: c.base, paths, connections: settings.connections, durationS: settings.durationS, cpus: cores.loadgen, watch })
  const originDelta = originTotal() - originBefore
  const logged = (c.logs?.since(mark) ?? '').split('\n').filter((l) => l.trim() !== '')
  for (const p of spot) {
    const s = await sample(c.base + p)
    if (c.gateway && !isHit(s)) problems.push(`${p} after the run was not a hit (${s.status}, ${s.headers['cache-status'] ?? 'no cache-status'})`)
  }
  if (result.non2xx > 0) problems.push(`${result.non2xx} error statuses`)
  if (result.errors > 0) problems.push(`${result.errors} socket errors or timeouts`)
  if (c.gateway && originDelta > 0) problems.push(`the origin received ${originDelta} request(s) during warm-up and run`)
  if (logged.length > 0) problems.push(`the gateway logged ${logged.length} line(s): ${summarizeWarnings(logged)}`)
  if (result.requests === 0) problems.push('no request completed')
  return { result, problems }
}

interface StampedeResult {
  name: string
  /** This tree's gateway (judged against the goal), not the baseline's. */
  goal: boolean
  latencies: number[]
  /** Origin requests per stampede key. */
  perKey: number[]
  failed: number
  kinds: Record<string, number>
  /** Gateway CPU seconds (every thread) over the bursts, the part of it after the origin answered, and the requests answered. */
  cpu: number
  cpuAfterOrigin: number
  requests: number
  /** Per burst: ms from the origin's answer to the last client's last body byte. */
  afterOrigin: number[]
  /** Per stampede: ms from the burst's dispatch to the origin seeing the gateway's request. */
  toOrigin: number[]
}

/**
 * 4. Stampedes on cold keys: a fresh memory-store and Redis-store gateway (and the same from
 * BENCH_STAMPEDE_BASELINE's build), each burst of each gateway in turn, round by round, so a
 * before/after comparison sees the same machine load.
 */
async function stampedes (settings: LimitSettings, cores: Layout, redisUrl: string, stops: Array<() => Promise<void>>, log: (line: string) => void): Promise<StampedeResult[]> {
  // In a thread of its own: sharing this thread's loop with the 200 clients, the origin would
  // see the gateway's request late (after the burst is dispatched) and answer late.
  const slowOrigin = await startOriginThread({ body2k: true, delayMs: settings.stampedeDelayMs })
  stops.push(async () => await slowOrigin.close())
  const builds = [{ root: undefined, tag: '' }, ...(settings.stampedeBaseline !== undefined ? [{ root: settings.stampedeBaseline, tag: 'baseline' }] : [])]
  const runs: StampedeRun[] = []
  for (const { root, tag } of builds) {
    for (const [id, name, extra] of [
      ['memory', 'cachegate, memory store', {}],
      ['redis', 'cachegate, Redis store', { redisUrl, keyPrefix: `limit-stampede${tag}:` }]
    ] as const) {
      const g = await startGateway({ name: `stampede/${id}${tag}`, origin: slowOrigin.url, cpus: cores.server, ...(root !== undefined ? { root } : {}), ...extra })
      stops.push(async () => await g.stop())
      runs.push(await openStampede(root === undefined ? name : `${name} (baseline: ${root})`, g, slowOrigin, settings, `${id}${tag}`))
    }
  }
  // The floor: bare node:http holding each burst for the origin's latency, then answering it.
  const holdPort = await freePort()
  const hold = await spawnNode({ name: 'bare hold', script: 'bench/servers/bare-hold.ts', cpus: cores.server, port: holdPort, env: { ...process.env, BENCH_PORT: String(holdPort), BENCH_HOLD_MS: String(settings.stampedeDelayMs) } })
  stops.push(async () => await hold.stop())
  runs.push(await openStampede(`reference: bare node:http holding the burst ${settings.stampedeDelayMs} ms`, { url: `http://127.0.0.1:${holdPort}`, proc: hold }, slowOrigin, settings, 'hold', true))
  for (let round = 0; round < settings.stampedeRounds; round++) {
    for (const run of runs) {
      log(`limit: stampede ${round + 1}/${settings.stampedeRounds}: ${run.result.name}, ${settings.stampedeClients} concurrent GETs on one cold key, origin ${settings.stampedeDelayMs} ms`)
      await run.burst(round)
    }
  }
  const results: StampedeResult[] = []
  for (const run of runs) results.push(await run.close())
  return results
}

interface StampedeRun {
  result: StampedeResult
  burst: (round: number) => Promise<void>
  close: () => Promise<StampedeResult>
}

/** Opens the clients' connections to one gateway (a burst on a warm key); each `burst` is then one stampede on a new key. */
/** Waits (at most 2 s) until the process used under 1 ms of CPU in 50 ms: its work is done. */
async function idle (pid: number): Promise<void> {
  let last = runSeconds(pid)
  for (let i = 0; i < 40 && last !== undefined; i++) {
    await sleep(50)
    const now = runSeconds(pid)
    if (now === undefined || now - last < 0.001) return
    last = now
  }
}

async function openStampede (name: string, g: { url: string, proc: { pid: number } }, origin: ThreadOrigin, settings: LimitSettings, id: string, reference = false): Promise<StampedeRun> {
  const clients = await Promise.all(Array.from({ length: settings.stampedeClients }, async () => await RawConnection.open(g.url)))
  const get = async (client: RawConnection, path: string): Promise<{ ms: number, end: number, status: number, cacheStatus: string }> => {
    const r = await client.get(path)
    return { ms: r.end - r.start, end: r.end, status: r.status, cacheStatus: r.cacheStatus }
  }
  const burst = async (path: string): Promise<Array<{ ms: number, end: number, status: number, cacheStatus: string }>> => await Promise.all(clients.map(async (c) => await get(c, path)))
  // Open every connection first (a burst on a warm key), so the stampede measures the
  // gateway and not TCP handshakes.
  const warm = `/items/warm-${id}`
  const first = clients[0]
  if (first === undefined) throw new Error('stampede: no clients')
  await get(first, warm)
  await get(first, warm)
  await burst(warm)
  const result: StampedeResult = { name, goal: !reference && !name.includes('(baseline'), latencies: [], perKey: [], failed: 0, kinds: {}, cpu: 0, cpuAfterOrigin: 0, requests: 0, afterOrigin: [], toOrigin: [] }
  return {
    result,
    burst: async (round) => {
      const path = `/items/cold-${id}-${Date.now()}-${round}`
      const cpuBefore = runSeconds(g.proc.pid) ?? Number.NaN
      origin.watch(path, g.proc.pid)
      const dispatched = performance.now()
      const results = await burst(path)
      const cpuAtAnswer = origin.cpuAtAnswer.get(path) ?? Number.NaN
      // The gateway still finishes the burst after its last byte ('finish' of 200 responses,
      // the store write): counted here, and done before the next burst (often the other
      // gateway's, on the same core) starts.
      await idle(g.proc.pid)
      const cpuAfter = runSeconds(g.proc.pid) ?? Number.NaN
      result.cpu += cpuAfter - cpuBefore
      result.cpuAfterOrigin += cpuAfter - cpuAtAnswer
      result.requests += results.length
      result.perKey.push(origin.counts.get(path) ?? 0)
      result.afterOrigin.push(Math.max(...results.map((r) => r.end)) - (origin.answeredAt.get(path) ?? Number.NaN))
      result.toOrigin.push((origin.receivedAt.get(path) ?? Number.NaN) - dispatched)
      for (const r of results) {
        result.latencies.push(r.ms)
        if (r.status !== 200) result.failed++
        const kind = r.status !== 200 ? 'failed' : /collapsed/.test(r.cacheStatus) ? 'collapsed' : /fwd=/.test(r.cacheStatus) ? 'fetched' : /hit/.test(r.cacheStatus) ? 'hit' : 'other'
        // Store trouble (a Redis call that failed or timed out, the breaker open) is named.
        const trouble = /detail=(store-[a-z-]+)/.exec(r.cacheStatus)?.[1]
        const label = trouble === undefined ? kind : `${kind} (${trouble})`
        result.kinds[label] = (result.kinds[label] ?? 0) + 1
      }
    },
    close: async () => {
      for (const c of clients) c.close()
      return result
    }
  }
}

function report (
  settings: LimitSettings,
  cores: Layout,
  generator: string,
  contenders: Contender[],
  rounds: Map<string, Round[]>,
  alloc: Map<string, ProbeStop & { requests: number }>,
  soaks: Array<{ c: Contender, samples: ProbeHeap[], result: RandomLoadResult }>,
  stampedes: StampedeResult[]
): LimitReport {
  const base = rounds.get('node') ?? []
  const goalRows: string[][] = []
  const rows: string[][] = []
  const problems: string[] = []
  for (const c of contenders) {
    const rs = rounds.get(c.id) ?? []
    const ratios = rs.map((r, i) => r.result.rps / (base[i]?.result.rps ?? Number.NaN))
    const p99s = rs.map((r, i) => r.result.p99 / (base[i]?.result.p99 ?? Number.NaN))
    const ratio = median(ratios)
    const spread = (Math.max(...ratios) - Math.min(...ratios)) / ratio
    const p99Ratio = median(p99s)
    const allHits = rs.every((r) => r.problems.length === 0)
    for (const r of rs) for (const p of r.problems) problems.push(`${c.name}: ${p}`)
    const costs = rs.map((r) => (r.result.cpu.server ?? Number.NaN) * 1e6 / r.result.rps)
    const cost = median(costs)
    // CPU efficiency within each round: bare node's server µs/req over this one's.
    const cpuRatio = median(costs.map((x, i) => ((base[i]?.result.cpu.server ?? Number.NaN) * 1e6 / (base[i]?.result.rps ?? Number.NaN)) / x))
    rows.push([
      c.name,
      fmt.int(median(rs.map((r) => r.result.rps))),
      fmt.ratio(ratio),
      ratios.map((x) => x.toFixed(2)).join(' / '),
      `${Math.round(spread * 100)}%`,
      fmt.ms(median(rs.map((r) => r.result.p50))),
      fmt.ms(median(rs.map((r) => r.result.p99))),
      fmt.ratio(p99Ratio),
      fmt.pct(median(rs.map((r) => r.result.cpu.server ?? Number.NaN))) + (c.redisPid !== undefined ? ` (+redis ${fmt.pct(median(rs.map((r) => r.result.cpu.redis ?? Number.NaN)))})` : ''),
      Number.isFinite(cost) ? cost.toFixed(1) : 'n/a',
      Number.isFinite(cpuRatio) ? fmt.ratio(cpuRatio) : 'n/a',
      fmt.pct(median(rs.map((r) => r.result.loadgenCpu ?? Number.NaN))),
      c.gateway ? (allHits ? 'yes' : 'NO') : (allHits ? 'n/a' : 'NO')
    ])
    if (c.goal !== undefined) {
      goalRows.push([`${c.name}: req/s ≥ ${c.goal.toFixed(2)}× bare node:http`, `${ratio.toFixed(2)}× (rounds ${ratios.map((x) => x.toFixed(2)).join(' / ')}; CPU efficiency ${cpuRatio.toFixed(2)}×)`, ratio >= c.goal && allHits ? 'met' : 'NOT MET'])
      goalRows.push([`${c.name}: p99 ≤ 2× bare node's p99`, `${p99Ratio.toFixed(2)}×`, p99Ratio <= 2 && allHits ? 'met' : 'NOT MET'])
    }
  }
  const throughput: Table = {
    title: `Hit path at the limit: ${settings.keys} warm keys at random, 2 KiB bodies, ${generator} ${settings.connections} connections (ratios to bare node:http)`,
    columns: ['contender', 'req/s', '× bare node', 'per round', 'spread', 'p50', 'p99', 'p99 × bare node', 'server CPU', 'CPU µs/req', '× bare node (CPU)', 'load-gen CPU', 'all hits'],
    numeric: [false, true, true, false, true, true, true, true, true, true, true, true, false],
    rows,
    notes: [
      `${generator === 'wrk' ? 'wrk -t1' : 'autocannon (wrk not installed)'}, ${settings.connections} connections, each request a path chosen uniformly at random from ${settings.keys} keys, primed before measuring; ${settings.warmupS} s warm-up then ${settings.durationS} s measured per contender; ${settings.rounds} interleaved rounds in rotating order, every round on freshly started servers (a process's JIT may settle fast or slow for its whole life, bare node:http included). "× bare node" is the median of the per-round ratios (each round's req/s over bare node's in the same round), "spread" is (max − min) / median of those ratios; req/s, p50, p99 and CPU are medians over the rounds.`,
      cores.pinned
        ? `Server under test on CPU ${cores.server} (taskset -c ${cores.server}); ${generator} on CPU ${cores.loadgen} (taskset -c ${cores.loadgen}), with redis-server and the origin.`
        : 'Not pinned (no taskset, one CPU or BENCH_NO_PIN=1): servers and load generator share the CPUs.',
      'Bare node:http and bare Fastify answer every path with the bytes and fields of one memory-store hit (bench/results/limit-response.json). Every server runs with the heap probe preloaded (--expose-gc, an idle extra listener).',
      'CPU µs/req = server CPU time per request (median over rounds); "× bare node (CPU)" = bare node\'s µs/req over this one\'s within each round (median): the efficiency ratio, which other processes taking the server\'s core disturb far less than req/s. Server CPU well under 100% means something else ran on the server\'s core.',
      `Machine load average (1 min) at the start of the run: ${loadAtStart}, at the end of the throughput rounds: ${loadAfterRounds}.`,
      'All hits: no error status, no socket error, the origin received no request during warm-up and run, the gateway logged nothing, and three keys sampled before and after said Cache-Status hit.',
      ...problems.map((p) => `PROBLEM: ${p}`)
    ]
  }

  const allocRows = contenders.map((c) => {
    const a = alloc.get(c.id)
    if (a === undefined || a.requests === 0) return [c.name, 'n/a', 'n/a', 'n/a', 'n/a']
    return [c.name, fmt.int(a.allocated / a.requests), (a.gcs * 1000 / a.requests).toFixed(2), (a.gcMs * 1000 / a.requests).toFixed(2), fmt.int(a.requests)]
  })
  const allocTable: Table = {
    title: 'Bytes allocated per request (V8 heap)',
    columns: ['contender', 'bytes / request', 'GCs / 1k req', 'GC ms / 1k req', 'requests'],
    numeric: [false, true, true, true, true],
    rows: allocRows,
    notes: [
      `A fixed ${settings.allocRequests} requests per contender (autocannon, 32 connections, random keys). The heap probe (bench/servers/heap-probe.mjs) forces a full GC, starts v8.GCProfiler, and at the end counts allocated bytes = (used heap at end − used heap at start) + Σ over the GCs in between of (used before − used after): every allocated byte is either still in the heap or was freed by one of those GCs. V8 heap only: Buffer backing stores are external memory and not counted. The probe's own two HTTP requests are included (a few KiB in total).`
    ]
  }

  const soakRows = soaks.map(({ c, samples, result }) => {
    const first = samples[1] ?? samples[0]
    const last = samples[samples.length - 1]
    const growth = first !== undefined && last !== undefined ? last.usedHeap - first.usedHeap : Number.NaN
    const flat = Math.abs(growth) <= Math.max(1 * MiB, 0.05 * (first?.usedHeap ?? 0))
    goalRows.push([`${c.name}: heap flat over a ${settings.soakS} s hit soak`, `${(growth / 1024).toFixed(0)} KiB from 10 s to the end (${samples.map((s) => (s.usedHeap / MiB).toFixed(1)).join(', ')} MiB)`, flat ? 'met' : 'NOT MET'])
    return [c.name, fmt.int(result.requests), samples.map((s) => (s.usedHeap / MiB).toFixed(1)).join(' → '), `${(growth / 1024).toFixed(0)} KiB`, ((last?.rss ?? 0) / MiB).toFixed(0), flat ? 'flat' : 'GROWING']
  })
  const soakTable: Table = {
    title: `Heap over a ${settings.soakS} s hit soak (MiB used after a full GC)`,
    columns: ['gateway', 'requests', 'heap at 0, 10, 20 … s, end', 'growth after 10 s', 'RSS MiB at end', 'verdict'],
    numeric: [false, true, false, true, true, false],
    rows: soakRows,
    notes: [`${generator} with ${settings.connections} connections on the same ${settings.keys} warm keys; the probe forces two full GCs before each sample. Flat: the heap at the end is within max(1 MiB, 5%) of the sample at 10 s (the first 10 s fill per-key caches).`]
  }

  const perStampede = (xs: number[]): string => xs.every((x) => Number.isFinite(x)) ? xs.map((x) => x.toFixed(0)).join(', ') : 'n/a'
  const stampedeRows = stampedes.map((s) => {
    const p99 = percentile(s.latencies, 99)
    const maxPerKey = Math.max(...s.perKey)
    const target = settings.stampedeDelayMs + 30
    if (s.goal) goalRows.push([`${s.name}: stampede p99 ≤ origin latency + 30 ms (${target} ms), one origin request`, `p99 ${fmt.ms(p99)} ms (last response ${fmt.ms(median(s.afterOrigin))} ms after the origin answered, median), origin requests per key ${s.perKey.join(', ')}`, p99 <= target && maxPerKey === 1 && s.failed === 0 ? 'met' : 'NOT MET'])
    const perRequest = (seconds: number): string => Number.isFinite(seconds) ? fmt.int(seconds * 1e6 / s.requests) : 'n/a'
    return [s.name, s.perKey.join(', '), fmt.ms(percentile(s.latencies, 50)), fmt.ms(p99), fmt.ms(Math.max(...s.latencies)), perStampede(s.toOrigin), perStampede(s.afterOrigin), perRequest(s.cpu), perRequest(s.cpuAfterOrigin), String(s.failed), Object.entries(s.kinds).map(([k, n]) => `${k} ${n}`).join(', ')]
  })
  const stampedeTable: Table = {
    title: `Stampede: ${settings.stampedeClients} concurrent GETs on one cold key, origin latency ${settings.stampedeDelayMs} ms`,
    columns: ['gateway', 'origin requests per key', 'p50 ms', 'p99 ms', 'max ms', 'origin saw the request (ms after dispatch, per stampede)', 'last response after the origin answered (ms, per stampede)', 'CPU µs/req', 'of which after the origin answered', 'failed', 'served as'],
    numeric: [false, false, true, true, true, false, false, true, true, true, false],
    rows: stampedeRows,
    notes: [
      `${settings.stampedeRounds} stampedes per gateway, each on a new key, latencies pooled (${settings.stampedeRounds * settings.stampedeClients} requests); the gateways take their bursts in turn, round by round. The ${settings.stampedeClients} connections are opened before (a burst on a warm key); latency is measured per request from the write of its bytes to the last body byte, in this process (bench/lib/raw-client.ts: one keep-alive connection per client, a prebuilt GET; a general-purpose client spends milliseconds of its own before the last of 200 requests leaves). Goal: p99 ≤ origin latency + 30 ms with one origin request per key.`,
      `The reference row is the floor: bare node:http (bench/servers/bare-hold.ts, on the gateways' core) holding every request of a burst for ${settings.stampedeDelayMs} ms and then answering them all with the same 2 KiB body, no origin and no cache: what this machine, these clients and node:http allow. A gateway's distance from it is the gateway's own cost.`,
      'Origin saw the request: from the dispatch of the burst to the moment the origin received the gateway\'s one request (the origin runs in a thread of its own, so the clients\' dispatch does not hold it back): the gateway\'s delay in forwarding the first miss of a burst.',
      'Last response after the origin answered: from the moment the origin (in its thread) sent its response to the last body byte any of the clients received, one figure per stampede: how long the gateway took to answer the whole burst (issue 12: ~30 ms).',
      'CPU µs/req: the gateway process\'s CPU time (every thread, from the scheduler\'s nanosecond accounting in /proc/PID/task/*/schedstat) from the start of each burst until the gateway is idle again (under 1 ms of CPU in 50 ms; the next burst waits for that), over the requests answered: the steadier figure when other processes load the machine; "of which after the origin answered": the part from the moment the origin sent its answer (answering the waiters, and requests the gateway had not read yet).',
      ...(settings.stampedeBaseline !== undefined ? [`Baseline rows: the gateways of ${settings.stampedeBaseline} (BENCH_STAMPEDE_BASELINE, built there with its own tsc), in the same rounds against the same origin and redis-server.`] : [])
    ]
  }

  return {
    tables: [throughput, allocTable, soakTable, stampedeTable].filter((t) => t.rows.length > 0),
    goals: {
      title: 'Issue 12 goals',
      columns: ['goal', 'measured', 'status'],
      rows: goalRows,
      notes: []
    }
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const started = performance.now()
  const r = await runLimit(limitSettings(), (line) => process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(0).padStart(3)}s] ${line}\n`))
  const all = [r.goals, ...r.tables]
  for (const t of all) process.stdout.write('\n' + renderText(t))
  await mkdir(join(ROOT, 'bench', 'results'), { recursive: true })
  writeFileSync(join(ROOT, 'bench', 'results', 'limit.md'), all.map(renderMarkdown).join('\n'))
}
