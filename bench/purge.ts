/**
 * Purges (issue "event-driven invalidation"): two measurements, one run.
 *
 *  1. Bulk tag purge: 100,000 entries tagged `bulk` are written straight into Redis through
 *     RedisStore (the gateway's own store code, so the keys and indexes are exactly what the
 *     gateway would write). Then POST /purge {"tags":["bulk"]} on instance A while a client
 *     loop keeps requesting another (cached) key on A and on B. Reported: the purge's duration,
 *     and the longest pause either loop saw, with its p50/p99 and any non-hit answer.
 *  2. Purge-to-invisible across two instances: B holds a URL in its L1 (served from it), A is
 *     told to purge it, and B is polled until it misses. Reported: time from sending the purge
 *     to B's first miss, over many runs.
 *
 * Both gateways are separate processes (`src/main.ts`) sharing one private redis-server, with
 * `l1: true` on the route and the default Redis timeouts.
 *
 *   node --import tsx bench/purge.ts      (BENCH_PURGE_ENTRIES, BENCH_PURGE_RUNS to change the sizes)
 */
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { pathToFileURL } from 'node:url'
import type { Cluster } from 'ioredis'
import { Pool } from 'undici'
import type { CacheEntry } from '../src/cache/entry.ts'
import type { CacheKey, VariantId } from '../src/cache/key.ts'
import { systemClock } from '../src/clock.ts'
import { createRedisClient, RedisStore } from '../src/store/redis.ts'
import { startOrigin } from './lib/origin.ts'
import { freePort, HOST, killAll, spawnNode, startRedis, type Proc } from './lib/processes.ts'
import { envInt } from './lib/table.ts'

const TOKEN = 'bench-purge-token'
const PUBLIC_HOST = 'shop.example'
const KEY_PREFIX = 'bp:'

interface Instance {
  name: string
  url: string
  adminUrl: string
  pool: Pool
  proc: Proc
}

async function startInstance (name: string, file: string): Promise<Instance> {
  const port = await freePort()
  const adminPort = await freePort()
  const proc = await spawnNode({
    name,
    script: 'src/main.ts',
    args: ['--config', file, '--port', String(port), '--host', HOST],
    port,
    env: { ...process.env, LOG_LEVEL: 'warn', NODE_ENV: 'production', REDIS_URL: '', PORT: '', HOST: '', ADMIN_PORT: String(adminPort), CACHEGATE_ADMIN_TOKEN: TOKEN, CACHEGATE_CONFIG: '' }
  })
  const url = `http://${HOST}:${port}`
  return { name, url, adminUrl: `http://${HOST}:${adminPort}`, pool: new Pool(url, { connections: 4 }), proc }
}

interface Got { status: number, hit: boolean, ms: number, cacheStatus: string }

async function get (gw: Instance, path: string): Promise<Got> {
  const started = performance.now()
  const res = await gw.pool.request({ method: 'GET', path, headers: { host: PUBLIC_HOST } })
  await res.body.arrayBuffer()
  const field = String(res.headers['cache-status'] ?? '')
  return { status: res.statusCode, hit: /^cachegate; hit(;|$)/.test(field) && !field.includes('fwd='), ms: performance.now() - started, cacheStatus: field }
}

async function purge (gw: Instance, body: unknown): Promise<{ status: number, body: { purged?: number, marked?: number, durationMs?: number }, ms: number }> {
  const started = performance.now()
  const res = await fetch(`${gw.adminUrl}/purge`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body)
  })
  const parsed = await res.json() as { purged?: number, marked?: number, durationMs?: number }
  return { status: res.status, body: parsed, ms: performance.now() - started }
}

function quantile (sorted: number[], q: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number
}

const ms = (n: number): string => `${n < 10 ? n.toFixed(2) : n.toFixed(1)} ms`

/** Requests `path` in a loop (one at a time) until stopped; returns the latencies and misses. */
function loop (gw: Instance, path: string): { stop: () => Promise<{ latencies: number[], misses: number, errors: number }> } {
  const state = { running: true }
  const latencies: number[] = []
  let misses = 0
  let errors = 0
  const done = (async () => {
    while (state.running) {
      try {
        const r = await get(gw, path)
        latencies.push(r.ms)
        if (!r.hit) misses++
      } catch {
        errors++
      }
    }
  })()
  return {
    stop: async () => {
      state.running = false
      await done
      return { latencies, misses, errors }
    }
  }
}

function describe (name: string, r: { latencies: number[], misses: number, errors: number }): string {
  const sorted = [...r.latencies].sort((a, b) => a - b)
  return `${name}: ${r.latencies.length} requests, ${r.misses} not hits, ${r.errors} errors; p50 ${ms(quantile(sorted, 0.5))}, p99 ${ms(quantile(sorted, 0.99))}, longest ${ms(sorted[sorted.length - 1] ?? NaN)}`
}

/** Writes `n` entries tagged `bulk` through the store, `concurrency` puts at a time. */
async function fill (store: RedisStore, n: number, concurrency: number): Promise<void> {
  const body = Buffer.from(JSON.stringify({ id: 0, name: 'bulk item', description: 'x'.repeat(200) }))
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++
      const now = systemClock.now()
      const url = `http://${PUBLIC_HOST}/bulk/${i}` as CacheKey
      const entry: CacheEntry = {
        url,
        status: 200,
        headers: { 'content-type': 'application/json', 'cache-control': 'max-age=600', 'surrogate-key': 'bulk' },
        body,
        requestTime: now,
        responseTime: now,
        initialAge: 0,
        freshness: 600_000,
        staleWhileRevalidate: 0,
        staleIfError: 0,
        vary: {},
        tags: ['bulk'],
        mustRevalidate: false,
        noCache: false,
        invalidatedAt: 0
      }
      await store.put(url, '' as VariantId, entry, { ttlMs: 600_000, maxVariants: 8 })
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
}

export async function main (): Promise<void> {
  const entries = envInt('BENCH_PURGE_ENTRIES', 100_000, 1, 10_000_000)
  const runs = envInt('BENCH_PURGE_RUNS', 50, 1, 10_000)
  const dir = mkdtempSync(join(tmpdir(), 'cachegate-bench-purge-'))
  const redis = await startRedis(undefined)
  const origin = await startOrigin()
  const file = join(dir, 'routes.yaml')
  writeFileSync(file, JSON.stringify({
    admin: { host: HOST },
    redis: { url: redis.url, keyPrefix: KEY_PREFIX },
    shutdownTimeout: '5s',
    routes: [{ name: 'bench', path: '/', origin: origin.url, l1: true }]
  }))
  const client = createRedisClient({ url: redis.url, commandTimeout: 10_000 })
  client.on('error', () => {})
  const instances: Instance[] = []
  try {
    if (client.status !== 'ready') await once(client as Cluster, 'ready')
    const a = await startInstance('gateway A', file)
    instances.push(a)
    const b = await startInstance('gateway B', file)
    instances.push(b)
    process.stdout.write(`two gateways (separate processes, l1: true) on one redis-server; node ${process.version}\n\n`)

    // 1. Bulk tag purge.
    const store = new RedisStore({ client, keyPrefix: KEY_PREFIX, clock: systemClock })
    let t0 = performance.now()
    await fill(store, entries, 256)
    process.stdout.write(`fill: ${entries} entries tagged "bulk" through RedisStore.put in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`)
    const sampled = [0, Math.floor(entries / 2), entries - 1].map((i) => `/bulk/${i}`)
    for (const path of sampled) {
      if (!(await get(a, path)).hit) throw new Error(`${path} written through the store is not a hit on the gateway`)
    }
    for (const gw of [a, b]) {
      await get(gw, '/products/hot')
      await get(gw, '/products/hot')
      if (!(await get(gw, '/products/hot')).hit) throw new Error('the hot key is not a hit')
    }
    const onA = loop(a, '/products/hot')
    const onB = loop(b, '/products/hot')
    const res = await purge(a, { tags: ['bulk'] })
    const [ra, rb] = [await onA.stop(), await onB.stop()]
    if (res.status !== 200) throw new Error(`purge answered ${res.status}: ${JSON.stringify(res.body)}`)
    process.stdout.write(`purge {"tags":["bulk"]} on A: ${res.body.purged ?? '?'} entries deleted in ${ms(res.ms)} (server durationMs ${res.body.durationMs ?? '?'})\n`)
    process.stdout.write(`  other key meanwhile, ${describe('on A (purging)', ra)}\n`)
    process.stdout.write(`  other key meanwhile, ${describe('on B (the other instance)', rb)}\n`)
    const left = (await store.urlsForTag('bulk')).length
    let stillHit = 0
    for (const path of sampled) if ((await get(a, path)).hit) stillHit++
    process.stdout.write(`  after: ${stillHit}/${sampled.length} sampled bulk URLs still hits (they were fetched from the origin again and stored, untagged)\n`)
    const again = await purge(a, { tags: ['bulk'] })
    process.stdout.write(`  the same purge again: ${again.body.purged ?? '?'} deleted in ${ms(again.ms)}; the index still lists ${left} URLs (members stay until their expiry,\n` +
      '  by design: see src/store/README.md), so it walks them all again, and deletes the sampled URLs stored since\n\n')

    // 2. Purge-to-invisible across two instances.
    const invisible: number[] = []
    const responses: number[] = []
    const afterAnswer: number[] = []
    for (let i = 0; i < runs; i++) {
      const path = `/latency/${i}`
      await get(a, path) // miss: A fetches and stores it
      let hit = false
      for (let tries = 0; tries < 100 && !hit; tries++) hit = (await get(b, path)).hit // B reads it from Redis into L1
      if (!hit || !(await get(b, path)).hit) throw new Error(`${path} never became a hit on B`)
      t0 = performance.now()
      const purging = purge(a, { urls: [`http://${PUBLIC_HOST}${path}`] })
      let seen = 0
      // Bounded: past l1MaxTtl (5 s) plus a margin, B still serving the purged entry is a failure.
      for (;;) {
        const r = await get(b, path)
        if (!r.hit) {
          seen = performance.now() - t0
          break
        }
        if (performance.now() - t0 > 10_000) throw new Error(`${path}: B still served the purged entry 10 s after the purge (Cache-Status: ${r.cacheStatus})`)
      }
      const p = await purging
      if (p.status !== 200) throw new Error(`purge answered ${p.status}: ${JSON.stringify(p.body)}`)
      invisible.push(seen)
      responses.push(p.ms)
      afterAnswer.push(seen - p.ms)
    }
    const inv = [...invisible].sort((x, y) => x - y)
    const rsp = [...responses].sort((x, y) => x - y)
    process.stdout.write(`purge-to-invisible (purge URL on A, poll B which served it from L1), ${runs} runs:\n`)
    process.stdout.write(`  B's first miss after sending the purge: p50 ${ms(quantile(inv, 0.5))}, p99 ${ms(quantile(inv, 0.99))}, max ${ms(inv[inv.length - 1] ?? NaN)}\n`)
    process.stdout.write(`  the purge's own response time:          p50 ${ms(quantile(rsp, 0.5))}, p99 ${ms(quantile(rsp, 0.99))}, max ${ms(rsp[rsp.length - 1] ?? NaN)}\n`)
    const aft = [...afterAnswer].sort((x, y) => x - y)
    process.stdout.write(`  B's first miss minus A's answer:         p50 ${ms(quantile(aft, 0.5))}, p99 ${ms(quantile(aft, 0.99))}, max ${ms(aft[aft.length - 1] ?? NaN)} (B is polled one request at a time)\n`)
  } catch (err) {
    for (const gw of instances) process.stderr.write(`--- ${gw.name} (last lines):\n${gw.proc.output().split('\n').map((l) => l.slice(0, 300)).slice(-15).join('\n')}\n`)
    throw err
  } finally {
    for (const gw of instances) await gw.pool.close()
    await Promise.all(instances.map(async (gw) => await gw.proc.stop()))
    client.disconnect()
    await origin.close()
    await redis.proc.stop(0)
    rmSync(dir, { recursive: true, force: true })
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    await main()
  } catch (err) {
    process.stderr.write(`${(err as Error).stack ?? String(err)}\n`)
    killAll()
    process.exitCode = 1
  }
}
