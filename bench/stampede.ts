/**
 * Stampede on cold keys (issue "stale-while-revalidate and coalescing").
 *
 * N clients, spread over M gateway processes that share one Redis, all request the same K
 * cold keys at the same moment; the origin answers after a delay and counts the requests it
 * gets per key. With coalescing working, each key costs the origin exactly one request
 * (in-instance: one flight per key; across instances: the fill lock in Redis, the others
 * wait for the "filled" message and read the stored entry). A last scenario turns the
 * cross-instance lock off (cache.coalesceWait: 0) for contrast: in-instance coalescing is
 * still on there, so the ideal for it is one request per key per instance. Another pauses
 * the shared redis-server (SIGSTOP, then SIGCONT ~300 ms later) just as each burst starts, on
 * two instances: the coalescing invariant promises at most one request per key per instance
 * whatever Redis does. Each instance has an origin of its own (same behaviour, same keys:
 * the cache key is the client's Host and path), so origin requests are counted per key per
 * instance.
 *
 *   node --import tsx bench/stampede.ts        (or npm run bench for both benchmarks)
 */
import { writeFileSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { Pool } from 'undici'
import { redisCommandTimeout, startGateway, summarizeWarnings, type GatewayProc } from './lib/gateway.ts'
import { startOrigin, type Origin } from './lib/origin.ts'
import { pinSelf, ROOT, sleep, startRedis, type RedisProc } from './lib/processes.ts'
import { envInt, fmt, renderMarkdown, renderText, type Table } from './lib/table.ts'

export interface StampedeSettings {
  clients: number
  keys: number
  /** Gateway process counts to try, e.g. [1, 2, 4]. */
  instances: number[]
  originDelayMs: number
  /** Stampedes per scenario, each on fresh keys; counts and latencies are pooled. */
  rounds: number
}

export function stampedeSettings (): StampedeSettings {
  const raw = process.env.BENCH_STAMPEDE_INSTANCES ?? '1,2,4'
  const instances = raw.split(',').map((s) => Number(s.trim())).filter((n) => Number.isInteger(n) && n >= 1 && n <= 16)
  if (instances.length === 0) throw new RangeError(`BENCH_STAMPEDE_INSTANCES must list instance counts from 1 to 16, got ${JSON.stringify(raw)}`)
  return {
    clients: envInt('BENCH_STAMPEDE_CLIENTS', 500, 1, 5000),
    keys: envInt('BENCH_STAMPEDE_KEYS', 20, 1, 1000),
    instances,
    originDelayMs: envInt('BENCH_STAMPEDE_DELAY', 200, 0, 10_000),
    rounds: envInt('BENCH_STAMPEDE_ROUNDS', 3, 1, 20)
  }
}

interface Scenario {
  label: string
  instances: number
  cache?: Record<string, string | number>
  /** redis.commandTimeout for this scenario (cachegate's default, or BENCH_REDIS_COMMAND_TIMEOUT, without it). */
  commandTimeout?: string
  /** Origin requests per key when coalescing works as designed. */
  ideal: number
  /** Pause the redis-server (SIGSTOP) this long as each measured burst starts, then SIGCONT (ms). */
  pauseRedisMs?: number
}

interface ClientResult {
  ms: number
  status: number
  cacheStatus: string
  error?: string
}

interface ScenarioResult {
  scenario: Scenario
  originPerKey: number
  maxPerKey: number
  /** The most origin requests one instance made for one key (the invariant: 1 whatever Redis does). */
  maxPerKeyPerInstance: number
  p50: number
  p99: number
  max: number
  failed: number
  /** Responses whose Cache-Status says the store failed (store-unavailable) or was bypassed by the breaker. */
  storeTrouble: Record<string, number>
  /** Gateway warning lines during the measured stampedes, summarized. */
  warnings: string
  /** Latencies of the responses by how they were served (fetched, collapsed, hit, other, failed). */
  kinds: Record<string, number[]>
  problems: string[]
}

/** How a response was served, from its Cache-Status. */
function kindOf (cacheStatus: string): string {
  if (cacheStatus.includes('collapsed')) return 'collapsed'
  if (/; hit(;|$)/.test(cacheStatus) && !cacheStatus.includes('fwd=')) return 'hit'
  if (cacheStatus.includes('fwd=uri-miss')) return 'fetched'
  return 'other'
}

function percentile (sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p / 100 * sorted.length) - 1))] ?? Number.NaN
}

/**
 * Every instance is asked for the same Host, as behind a load balancer: the cache key
 * includes the Host (port and all), so instances on different ports would otherwise be
 * caching different URLs.
 */
const HOST_HEADER = 'shop.example.test'

async function get (pool: Pool, path: string): Promise<ClientResult> {
  const start = performance.now()
  try {
    const res = await pool.request({ method: 'GET', path, headers: { host: HOST_HEADER }, headersTimeout: 30_000, bodyTimeout: 30_000 })
    await res.body.arrayBuffer()
    const field = res.headers['cache-status']
    return { ms: performance.now() - start, status: res.statusCode, cacheStatus: Array.isArray(field) ? field.join(', ') : field ?? '' }
  } catch (err) {
    return { ms: performance.now() - start, status: 0, cacheStatus: '', error: err instanceof Error ? err.message : String(err) }
  }
}

/**
 * Client j uses instance j mod M and key floor(j / M) mod K, so every key is asked of every
 * instance. All requests are issued in the same tick.
 */
async function stampede (pools: Pool[], paths: string[], clients: number): Promise<ClientResult[]> {
  const m = pools.length
  const all: Array<Promise<ClientResult>> = []
  for (let j = 0; j < clients; j++) {
    const pool = pools[j % m] as Pool
    const path = paths[Math.floor(j / m) % paths.length] as string
    all.push(get(pool, path))
  }
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error('stampede did not finish within 60 s')), 60_000) })
  try {
    return await Promise.race([Promise.all(all), deadline])
  } finally {
    clearTimeout(timer)
  }
}

/** SIGSTOP, then SIGCONT after `ms`: a Redis that neither answers nor drops connections. */
async function pauseRedis (pid: number, ms: number): Promise<void> {
  process.kill(pid, 'SIGSTOP')
  try {
    await sleep(ms)
  } finally {
    process.kill(pid, 'SIGCONT')
  }
}

async function runScenario (s: Scenario, index: number, settings: StampedeSettings, redis: RedisProc, cpus: string, log: (line: string) => void): Promise<ScenarioResult> {
  const tag = `s${index}`
  log(`stampede: ${s.label}: starting ${s.instances} gateway process(es)`)
  const origins: Origin[] = await Promise.all(Array.from({ length: s.instances }, async () => await startOrigin({ delayMs: settings.originDelayMs })))
  const redisUrl = redis.url
  const gateways: GatewayProc[] = await Promise.all(Array.from({ length: s.instances }, async (_v, i) => await startGateway({
    name: `cachegate ${tag}.${i}`,
    origin: (origins[i] as Origin).url,
    redisUrl,
    keyPrefix: `bench-${tag}:`,
    cpus,
    ...(s.commandTimeout !== undefined ? { redisCommandTimeout: s.commandTimeout } : redisCommandTimeout()),
    ...(s.cache !== undefined ? { cache: s.cache } : {})
  })))
  const perPool = Math.ceil(settings.clients / s.instances)
  const pools = gateways.map((g) => new Pool(g.url, { connections: perPool, pipelining: 1, keepAliveTimeout: 60_000 }))
  const problems: string[] = []
  try {
    // Warm-up on other keys: opens the clients' connections and runs the miss, coalescing
    // and hit paths once, so the measured stampede is not the processes' first requests.
    const warm = Array.from({ length: settings.keys }, (_v, k) => `/products/${tag}-warm-${k}`)
    for (let i = 0; i < 2; i++) {
      const results = await stampede(pools, warm, settings.clients)
      const failed = results.filter((r) => r.status !== 200).length
      if (failed > 0) problems.push(`${failed} warm-up request(s) failed, e.g. ${results.find((r) => r.status !== 200)?.error ?? ''}`)
    }
    // A burst on cold processes can trip the Redis circuit breaker (command timeouts while the
    // event loop is busy). Wait out its cool-down and send a few requests one by one, so the
    // measured stampedes start with Redis in use; what they do to the breaker is reported.
    await sleep(2500)
    for (const pool of pools) for (let i = 0; i < 5; i++) await get(pool, warm[0] ?? '/')
    const marks = gateways.map((g) => g.proc.mark())

    const latencies: number[] = []
    const kinds: Record<string, number[]> = {}
    const storeTrouble: Record<string, number> = {}
    let failed = 0
    let originRequests = 0
    let maxPerKey = 0
    let maxPerKeyPerInstance = 0
    for (let round = 0; round < settings.rounds; round++) {
      const paths = Array.from({ length: settings.keys }, (_v, k) => `/products/${tag}-r${round}-${k}`)
      log(`stampede: ${s.label}: round ${round + 1}/${settings.rounds}: ${settings.clients} clients, ${settings.keys} cold keys`)
      const burst = stampede(pools, paths, settings.clients)
      if (s.pauseRedisMs !== undefined) await pauseRedis(redis.proc.pid, s.pauseRedisMs)
      const results = await burst
      for (const r of results) {
        latencies.push(r.ms)
        if (r.status !== 200) failed++
        const kind = r.status === 200 ? kindOf(r.cacheStatus) : 'failed'
        const trouble = /detail=(store-[a-z-]+)/.exec(r.cacheStatus)?.[1]
        if (trouble !== undefined) storeTrouble[trouble] = (storeTrouble[trouble] ?? 0) + 1
        const list = kinds[kind] ?? []
        list.push(r.ms)
        kinds[kind] = list
      }
      for (const p of paths) {
        const each = origins.map((o) => o.counts.get(p) ?? 0)
        const n = each.reduce((a, b) => a + b, 0)
        originRequests += n
        maxPerKey = Math.max(maxPerKey, n)
        maxPerKeyPerInstance = Math.max(maxPerKeyPerInstance, ...each)
      }
      // Let the fills' store writes and lock releases finish before the next round.
      await sleep(300)
    }
    latencies.sort((a, b) => a - b)
    const logged = gateways.flatMap((g, i) => g.proc.since(marks[i] ?? 0).split('\n').filter((l) => l.trim() !== ''))
    const warnings = logged.length > 0 ? `${logged.length} warning line(s): ${summarizeWarnings(logged)}` : ''
    if (logged.length > 0) problems.push(`the gateways logged ${warnings}`)
    if (failed > 0) problems.push(`${failed} client request(s) did not get a 200`)
    return {
      scenario: s,
      originPerKey: originRequests / (settings.keys * settings.rounds),
      maxPerKey,
      maxPerKeyPerInstance,
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      max: latencies[latencies.length - 1] ?? Number.NaN,
      failed,
      storeTrouble,
      warnings,
      kinds,
      problems
    }
  } finally {
    await Promise.all(pools.map(async (p) => await p.destroy()))
    await Promise.all(gateways.map(async (g) => await g.stop()))
    await Promise.all(origins.map(async (o) => await o.close()))
  }
}

export async function runStampede (settings: StampedeSettings = stampedeSettings(), log: (line: string) => void = (l) => process.stderr.write(l + '\n')): Promise<Table> {
  const cores = pinSelf()
  // Gateways may use every CPU here (the point is the origin count, not throughput).
  const all = cores.pinned ? `${cores.server},${cores.others}` : ''
  const redis = await startRedis(all)
  try {
    const most = Math.max(...settings.instances)
    const plural = (m: number): string => `${m} instance${m === 1 ? '' : 's'}`
    const scenarios: Scenario[] = [
      ...settings.instances.map((m) => ({ label: `${plural(m)}, shared Redis`, instances: m, ideal: 1 })),
      // Command timeouts while a burst keeps the event loop busy open the breaker, which turns
      // the cross-instance lock off: the same stampede with a timeout that does not fire.
      ...(process.env.BENCH_REDIS_COMMAND_TIMEOUT === undefined || process.env.BENCH_REDIS_COMMAND_TIMEOUT === ''
        ? [{ label: `${plural(most)}, shared Redis, redis.commandTimeout: 1s`, instances: most, commandTimeout: '1s', ideal: 1 }]
        : []),
      {
        label: `${plural(most)}, cross-instance lock off (coalesceWait: 0; in-instance coalescing on)`,
        instances: most,
        cache: { coalesceWait: 0 },
        ideal: most
      },
      // The coalescing invariant under a stalled Redis: lookups and fill locks time out, and each
      // instance fetches at most once per key (ideal 1 when the lock was taken before the pause,
      // 2 when each instance leads its own fetch; never more than one per instance).
      { label: '2 instances, shared Redis paused (SIGSTOP) 300 ms as each burst starts', instances: 2, pauseRedisMs: 300, ideal: 2 }
    ]
    const results: ScenarioResult[] = []
    for (const [i, s] of scenarios.entries()) results.push(await runScenario(s, i, settings, redis, all, log))

    const rows = results.map((r) => [
      r.scenario.label,
      r.originPerKey.toFixed(2),
      String(r.maxPerKey),
      String(r.maxPerKeyPerInstance),
      r.scenario.ideal.toFixed(1),
      fmt.ms(r.p50),
      fmt.ms(r.p99),
      fmt.ms(r.max),
      ['fetched', 'collapsed', 'hit', 'other', 'failed'].flatMap((k) => {
        const ms = (r.kinds[k] ?? []).sort((a, b) => a - b)
        return ms.length === 0 ? [] : [`${k} ${ms.length} (p50 ${Math.round(percentile(ms, 50))})`]
      }).join(', '),
      Object.entries(r.storeTrouble).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'
    ])
    const notes = [
      `${settings.clients} clients (one connection each, opened and warmed before the stampede) request ${settings.keys} cold keys at once, client j on instance j mod M and key floor(j/M) mod ${settings.keys}; ${settings.rounds} stampede(s) per scenario on fresh keys, pooled.`,
      'max/key/instance: the most origin requests one instance made for one key (each instance has an origin of its own); the coalescing invariant is 1, with Redis healthy or not.',
      `Origin answers after ${settings.originDelayMs} ms, so ${settings.originDelayMs} ms is the floor for every client's latency. Latency is measured by the clients from sending to the last body byte.`,
      'Served as (from Cache-Status): fetched = the request that went to the origin (or waited on the fill lock, then found nothing stored), collapsed = answered from another request\'s fetch (same instance) or fill (another instance), hit = the entry was already stored when it arrived.',
      `Every request carries Host: ${HOST_HEADER} (as behind a load balancer; the cache key includes the Host).`,
      'Store trouble: responses whose Cache-Status says detail=store-unavailable (a Redis call failed, e.g. timed out) or store-bypassed (the circuit breaker was open, so no store and no cross-instance lock). Gateways use cachegate\'s defaults (redis.commandTimeout 50ms, breaker 5 failures / 2s) unless the scenario says otherwise; each scenario waits out the breaker\'s cool-down after its warm-up.',
      'Gateways share one redis-server and both CPUs with the clients and the origin; each scenario starts fresh gateway processes and uses its own key prefix.',
      ...results.flatMap((r) => r.problems.map((p) => `PROBLEM (${r.scenario.label}): ${p}`))
    ]
    return {
      title: 'Stampede on cold keys (origin requests per key, lower is better; client latency in ms)',
      columns: ['scenario', 'origin req/key', 'max/key', 'max/key/instance', 'ideal', 'p50', 'p99', 'max', 'served as (count, p50 ms)', 'store trouble (responses)'],
      numeric: [false, true, true, true, true, true, true, true, false, false],
      rows,
      notes
    }
  } finally {
    await redis.proc.stop()
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const table = await runStampede()
  process.stdout.write('\n' + renderText(table))
  await mkdir(join(ROOT, 'bench', 'results'), { recursive: true })
  writeFileSync(join(ROOT, 'bench', 'results', 'stampede.md'), renderMarkdown(table))
}
