/**
 * Cache-HIT throughput and latency (issue "read-through gateway", Performance).
 *
 * Contenders, all in the same run with the same load, each server alone on one core:
 *   bare node:http  - answers the bytes and fields cachegate sends on a hit (the baseline)
 *   bare Fastify    - the same from one Fastify route (what the framework costs)
 *   cachegate/memory - primed, every request a hit from the memory store
 *   cachegate/redis  - primed, every request a hit from Redis (one MGET per request), with
 *                      cachegate's defaults and (unless BENCH_REDIS_COMMAND_TIMEOUT is set)
 *                      again with a 1 s command timeout, the Redis hit path without timeouts
 *
 * A run counts only if every response was a hit: no non-2xx, no errors, the origin received
 * no request during it, and a sampled request before and after says `Cache-Status: …; hit`.
 *
 *   node --import tsx bench/hit.ts        (or npm run bench for both benchmarks)
 */
import { writeFileSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { redisCommandTimeout, startGateway, summarizeWarnings, type GatewayProc } from './lib/gateway.ts'
import { isHit, measure, sample, type LoadResult, type LoadSettings, type Sample } from './lib/load.ts'
import { startOrigin } from './lib/origin.ts'
import { freePort, pinSelf, ROOT, sleep, spawnNode, startRedis, type Proc } from './lib/processes.ts'
import { envInt, fmt, renderMarkdown, renderText, type Table } from './lib/table.ts'
import type { RecordedResponse } from './servers/response.ts'

export interface HitSettings extends LoadSettings {
  /** Interleaved rounds; each contender's best round is reported. */
  rounds: number
  /** Write a V8 CPU profile of the memory-store gateway to this directory. */
  profileDir: string | undefined
}

export function hitSettings (): HitSettings {
  return {
    durationS: envInt('BENCH_DURATION', 10, 1, 600),
    warmupS: envInt('BENCH_WARMUP', 2, 0, 60),
    connections: envInt('BENCH_CONNECTIONS', 50, 1, 1000),
    rounds: envInt('BENCH_ROUNDS', 2, 1, 10),
    profileDir: process.env.BENCH_PROFILE === '1' ? join(ROOT, 'bench', 'results', 'profiles') : undefined
  }
}

const PATH = '/products/1001'

/** Fields that are per connection or per response time, not part of what is compared. */
const VOLATILE = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding'])

interface Contender {
  name: string
  url: string
  /** The process whose output is checked (gateways log warnings such as store failures). */
  logs?: Proc
  /** Processes whose CPU is reported: the first is "the server". */
  watch: Record<string, number>
  gateway: boolean
  /** Goal as a share of bare node's requests/s. */
  goal?: number
}

interface Round {
  result: LoadResult
  verified: boolean
  problems: string[]
}

/** Requests the gateway until it answers from the cache (the first request fills it). */
async function prime (gateway: GatewayProc): Promise<Sample> {
  const url = gateway.url + PATH
  for (let attempt = 0; attempt < 100; attempt++) {
    const s = await sample(url)
    if (s.status !== 200) throw new Error(`${gateway.proc.name}: priming got status ${s.status}: ${s.body.toString().slice(0, 200)}`)
    if (isHit(s)) return s
    await sleep(20)
  }
  throw new Error(`${gateway.proc.name}: still not a hit after 100 requests:\n${gateway.proc.output()}`)
}

function record (s: Sample): RecordedResponse {
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(s.headers)) if (!VOLATILE.has(name)) headers[name] = value
  return { status: s.status, headers, body: s.body.toString('base64') }
}

export async function runHit (settings: HitSettings = hitSettings(), log: (line: string) => void = (l) => process.stderr.write(l + '\n')): Promise<Table> {
  const cores = pinSelf()
  const started: Array<{ stop: () => Promise<void> }> = []
  const origin = await startOrigin()
  started.push({ stop: async () => await origin.close() })
  try {
    // redis-server shares the load generator's core(s): on a deployment it is another machine.
    const redis = await startRedis(cores.others)
    started.push(redis.proc)
    if (settings.profileDir !== undefined) await mkdir(settings.profileDir, { recursive: true })

    log(`hit: starting gateways (server core: ${cores.pinned ? cores.server : 'unpinned'})`)
    const memory = await startGateway({
      name: 'cachegate/memory',
      origin: origin.url,
      cpus: cores.server,
      ...(settings.profileDir !== undefined ? { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', settings.profileDir] } : {})
    })
    started.push(memory)
    const redisGateway = await startGateway({ name: 'cachegate/redis', origin: origin.url, redisUrl: redis.url, cpus: cores.server, ...redisCommandTimeout() })
    started.push(redisGateway)

    // The same Redis store with the route's L1 on: hot entries answered from instance memory,
    // re-read from Redis at most every cache.l1MaxTtl (5 s), kept coherent by pub/sub.
    const layered = await startGateway({ name: 'cachegate/redis-l1', origin: origin.url, redisUrl: redis.url, keyPrefix: 'bench-l1:', cpus: cores.server, l1: true, ...redisCommandTimeout() })
    started.push(layered)

    const memoryHit = await prime(memory)
    const redisHit = await prime(redisGateway)
    await prime(layered)
    const recorded = record(memoryHit)
    const redisRecorded = record(redisHit)
    const differs = Object.keys(recorded.headers).sort().join() !== Object.keys(redisRecorded.headers).sort().join() ||
      recorded.body !== redisRecorded.body

    // The reference servers answer with exactly what cachegate sent on that hit.
    const responseFile = join(ROOT, 'bench', 'results', 'hit-response.json')
    await mkdir(join(ROOT, 'bench', 'results'), { recursive: true })
    writeFileSync(responseFile, JSON.stringify(recorded, null, 2))
    const startReference = async (name: string, script: string): Promise<{ proc: Proc, port: number }> => {
      const port = await freePort()
      const proc = await spawnNode({ name, script, cpus: cores.server, port, env: { ...process.env, BENCH_PORT: String(port), BENCH_RESPONSE: responseFile } })
      started.push(proc)
      return { proc, port }
    }
    const { proc: nodeProc, port: nodePort } = await startReference('bare node:http', 'bench/servers/bare-node.ts')
    const { proc: fastifyProc, port: fastifyPort } = await startReference('bare Fastify', 'bench/servers/bare-fastify.ts')

    const contenders: Contender[] = [
      { name: 'bare node:http (baseline)', url: `http://127.0.0.1:${nodePort}${PATH}`, watch: { server: nodeProc.pid }, gateway: false },
      { name: 'bare Fastify route', url: `http://127.0.0.1:${fastifyPort}${PATH}`, watch: { server: fastifyProc.pid }, gateway: false },
      { name: 'cachegate, memory store, hit', url: memory.url + PATH, logs: memory.proc, watch: { server: memory.proc.pid }, gateway: true, goal: 0.7 },
      { name: 'cachegate, Redis store, hit', url: redisGateway.url + PATH, logs: redisGateway.proc, watch: { server: redisGateway.proc.pid, redis: redis.proc.pid }, gateway: true, goal: 0.5 },
      { name: 'cachegate, Redis store + L1 (route l1: true), hit', url: layered.url + PATH, logs: layered.proc, watch: { server: layered.proc.pid, redis: redis.proc.pid }, gateway: true }
    ]

    const rounds = new Map<string, Round[]>(contenders.map((c) => [c.name, []]))
    for (let round = 0; round < settings.rounds; round++) {
      // Rotate the order so no contender always runs first (or right after the same one).
      const order = contenders.map((_c, i) => contenders[(i + round) % contenders.length] as Contender)
      for (const c of order) {
        log(`hit: round ${round + 1}/${settings.rounds}: ${c.name} (${settings.warmupS}s warm-up + ${settings.durationS}s, ${settings.connections} connections)`)
        rounds.get(c.name)?.push(await measureOne(c, settings, () => origin.total()))
      }
    }

    const baselineRounds = rounds.get(contenders[0]?.name ?? '') ?? []
    const baseline = best(baselineRounds)
    const baselineCost = leastCost(baselineRounds)
    const rows: string[][] = []
    const problems: string[] = []
    const bytes: string[] = []
    const loadgen: string[] = []
    for (const c of contenders) {
      const rs = rounds.get(c.name) ?? []
      const b = best(rs)
      if (b === undefined || baseline === undefined) continue
      const ratio = b.result.rps / baseline.result.rps
      // Ratio of this contender to bare node within the same round, for every round.
      const perRound = rs.map((r, i) => {
        const base = baselineRounds[i]
        return base !== undefined ? (r.result.rps / base.result.rps).toFixed(2) : '?'
      })
      const cost = leastCost(rs)
      const costRatio = cost !== undefined && baselineCost !== undefined ? baselineCost / cost : undefined
      const verified = rs.every((r) => r.verified)
      for (const r of rs) for (const p of r.problems) problems.push(`${c.name}: ${p}`)
      bytes.push(`${c.name} ${Math.round(b.result.bytesPerResponse)}`)
      loadgen.push(`${fmt.pct(b.result.loadgenCpu)} (${c.name})`)
      rows.push([
        c.name,
        fmt.int(b.result.rps),
        fmt.ratio(ratio),
        perRound.join(' / '),
        fmt.ms(b.result.p50),
        fmt.ms(b.result.p99),
        fmt.pct(b.result.cpu.server) + (b.result.cpu.redis !== undefined ? ` (+redis ${fmt.pct(b.result.cpu.redis)})` : ''),
        cost === undefined ? 'n/a' : cost.toFixed(1),
        costRatio === undefined ? 'n/a' : fmt.ratio(costRatio),
        c.goal === undefined
          ? ''
          : `≥ ${c.goal.toFixed(2)}×: req/s ${ratio >= c.goal ? 'met' : 'MISSED'}, CPU ${costRatio === undefined ? 'n/a' : costRatio >= c.goal ? 'met' : 'MISSED'}`,
        c.gateway ? (verified ? 'yes' : 'NO') : (verified ? 'n/a (2xx)' : 'NO')
      ])
    }

    const notes = [
      `${settings.connections} connections, pipelining 1, ${settings.warmupS} s warm-up then ${settings.durationS} s measured, ${settings.rounds} interleaved round(s) in rotating order; req/s, p50 and p99 are each contender's best round, "per round" its req/s ratio to bare node within each round.`,
      cores.pinned
        ? `Server under test pinned to CPU ${cores.server} (taskset); load generator (autocannon, this process), redis-server and the origin on CPU ${cores.others}. Server CPU = share of one core the server process used during the measured window; load-gen CPU: ${loadgen.join(', ')}.`
        : 'Not pinned (no taskset or a single CPU): servers and load generator share the CPUs; absolute numbers are low, ratios still compare like with like.',
      'CPU µs/req = server CPU time / requests served (least over the rounds), and "× bare node (CPU)" = bare node\'s µs/req / this one\'s: the efficiency ratio, much less sensitive than req/s to other processes taking CPU time from the server on a busy machine.',
      `Bytes per response, headers included: ${bytes.join(', ')}.`,
      process.env.BENCH_REDIS_COMMAND_TIMEOUT === undefined || process.env.BENCH_REDIS_COMMAND_TIMEOUT === ''
        ? 'Redis-store gateways run with cachegate\'s defaults (redis.commandTimeout 50ms): a lookup that timed out would be a miss, which the "all hits" check reports. "+ L1" is the same Redis store with the route\'s l1 on: hot entries from instance memory, re-read from Redis at most every cache.l1MaxTtl (5 s).'
        : `Redis-store gateways run with redis.commandTimeout ${process.env.BENCH_REDIS_COMMAND_TIMEOUT} (BENCH_REDIS_COMMAND_TIMEOUT).`,
      `Response: GET ${PATH}, ${Buffer.from(recorded.body, 'base64').length} bytes of JSON with cachegate's hit fields (${Object.keys(recorded.headers).join(', ')}); the reference servers send the same status, fields and body.`,
      'Hits verified: no non-2xx or errors, zero origin requests during the run, and Cache-Status "hit" on a request sampled before and after it.',
      ...(differs ? ['Note: the Redis-store hit response differs from the memory-store one in fields or body (see bench/results/hit-response.json).'] : []),
      ...(baseline !== undefined && baseline.result.loadgenCpu !== undefined && baseline.result.loadgenCpu > 0.9 && (baseline.result.cpu.server ?? 1) < 0.9
        ? ['Warning: the load generator was busier than the bare node server: the baseline may be generator-bound, which flatters every ratio.']
        : []),
      ...problems.map((p) => `PROBLEM: ${p}`)
    ]
    return {
      title: 'Cache-hit throughput (requests/s, higher is better; latency in ms)',
      columns: ['contender', 'req/s', '× bare node', 'per round', 'p50', 'p99', 'server CPU', 'CPU µs/req', '× bare node (CPU)', 'goal', 'all hits'],
      numeric: [false, true, true, false, true, true, true, true, true, false, false],
      rows,
      notes
    }
  } finally {
    for (const s of started.reverse()) await s.stop().catch(() => undefined)
  }
}

async function measureOne (c: Contender, settings: HitSettings, originTotal: () => number): Promise<Round> {
  const problems: string[] = []
  // Start from a hit: if an earlier run tripped the Redis circuit breaker, wait out its cool-down.
  let before = await sample(c.url)
  for (let attempt = 0; c.gateway && !isHit(before) && attempt < 6; attempt++) {
    await sleep(500)
    before = await sample(c.url)
  }
  if (c.gateway && !isHit(before)) problems.push(`sample before the run was not a hit (${before.status}, cache-status: ${before.headers['cache-status'] ?? 'none'})`)
  const originBefore = originTotal()
  const mark = c.logs?.mark() ?? 0
  const result = await measure(c.url, settings, c.watch)
  const originDelta = originTotal() - originBefore
  const logged = (c.logs?.since(mark) ?? '').split('\n').filter((l) => l.trim() !== '')
  const after = await sample(c.url)
  if (c.gateway && !isHit(after)) problems.push(`sample after the run was not a hit (${after.status}, cache-status: ${after.headers['cache-status'] ?? 'none'})`)
  if (result.non2xx > 0) problems.push(`${result.non2xx} non-2xx responses`)
  if (result.errors > 0) problems.push(`${result.errors} errors (${result.timeouts} timeouts)`)
  if (c.gateway && originDelta > 0) problems.push(`the origin received ${originDelta} request(s) during warm-up and run`)
  if (logged.length > 0) problems.push(`the gateway logged ${logged.length} warning line(s) during warm-up and run: ${summarizeWarnings(logged)}`)
  if (result.requests === 0) problems.push('no request completed')
  return { result, verified: problems.length === 0, problems }
}

/** The least server CPU per request over the rounds (µs): the measure least disturbed by a busy machine. */
function leastCost (rounds: Round[]): number | undefined {
  let out: number | undefined
  for (const r of rounds) {
    const cpu = r.result.cpu.server
    if (cpu === undefined || r.result.rps <= 0) continue
    const cost = cpu * 1e6 / r.result.rps
    if (out === undefined || cost < out) out = cost
  }
  return out
}

function best (rounds: Round[]): Round | undefined {
  let out: Round | undefined
  for (const r of rounds) if (out === undefined || r.result.rps > out.result.rps) out = r
  return out
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const table = await runHit()
  process.stdout.write('\n' + renderText(table))
  await mkdir(join(ROOT, 'bench', 'results'), { recursive: true })
  writeFileSync(join(ROOT, 'bench', 'results', 'hit.md'), renderMarkdown(table))
}
