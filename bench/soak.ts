/**
 * Soak under faults: steady load through one gateway process for SOAK_SECONDS (default 60)
 * while its Redis is killed (SIGKILL) and restarted twice and hung (SIGSTOP) once, and the
 * origin fails in two bursts (503s, connections reset before the headers, bodies cut mid-way).
 * Not a timed test and not a benchmark: it prints what the clients saw.
 *
 *   SOAK_SECONDS=60 node --import tsx bench/soak.ts
 *
 * Every body is checked against what the origin sends for that URL (content and length). The
 * counts that must be zero: truncated or wrong bodies, 5xx the gateway produced outside the
 * origin's failure bursts, client-side errors, wrong entries found in Redis afterwards.
 * Inside a burst the gateway's own 502/504 are expected (the origin failed and there was no
 * stale entry to serve); they are told apart from the origin's 503s passed through by their
 * body (the catalogue's `CG_ERR_*` code) and Cache-Status.
 *
 * Knobs: SOAK_SECONDS (default 60), SOAK_CLIENTS (concurrent clients, default 24).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { Pool } from 'undici'
import type { CacheKey } from '../src/cache/key.ts'
import { systemClock } from '../src/clock.ts'
import { RedisStore } from '../src/store/redis.ts'
import { Latencies } from './lib/load.ts'
import { freePort, HOST, sleep, spawnNode, spawnProc, type Proc } from './lib/processes.ts'
import { envInt, fmt } from './lib/table.ts'

const SECONDS = envInt('SOAK_SECONDS', 60, 5, 86_400)
const CLIENTS = envInt('SOAK_CLIENTS', 24, 1, 1000)
const KEYS = 200
const PREFIX = 'soak:'

// ---------------------------------------------------------------------------------------------
// Origin

/** The body the origin sends for an item: deterministic, 300 B to ~48 KiB, naming its item. */
function itemBody (n: number): Buffer {
  const size = 300 + ((n * 7919) % 48_000)
  const unit = `item ${n};`
  return Buffer.from(unit.repeat(Math.ceil(size / unit.length)).slice(0, size))
}

const bodies = Array.from({ length: KEYS }, (_, n) => itemBody(n))

type OriginMode = 'normal' | 'failing'
let originMode: OriginMode = 'normal'
const originCounts = { requests: 0, failures: 0 }

function originHandler (req: IncomingMessage, res: ServerResponse): void {
  originCounts.requests++
  const n = Number(/^\/items\/(\d+)$/.exec(req.url ?? '')?.[1] ?? Number.NaN)
  const body = bodies[n]
  if (body === undefined) {
    res.writeHead(404, { 'content-length': 0 })
    res.end()
    return
  }
  if (originMode === 'failing') {
    originCounts.failures++
    const r = Math.random()
    if (r < 0.4) {
      const text = '{"origin":503}'
      res.writeHead(503, { 'content-type': 'application/json', 'content-length': text.length, 'cache-control': 'no-store' })
      res.end(text)
    } else if (r < 0.7) {
      req.socket.destroy() // before any byte of the response
    } else {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length, 'cache-control': 'public, max-age=2, stale-if-error=20' })
      res.write(body.subarray(0, body.length >> 1), () => req.socket.destroy()) // cut mid-body
    }
    return
  }
  // One item in ten is never stored: those always reach the origin.
  const cacheControl = n % 10 === 9 ? 'no-store' : 'public, max-age=2, stale-if-error=20'
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length, 'cache-control': cacheControl })
  res.end(body)
}

// ---------------------------------------------------------------------------------------------
// Redis that can be killed and started again on the same port

class RedisServer {
  readonly port: number
  #proc: Proc | undefined
  #generation = 0
  constructor (port: number) {
    this.port = port
  }

  async start (): Promise<void> {
    this.#proc = await spawnProc({
      name: `redis-server#${++this.#generation}`,
      command: 'redis-server',
      args: ['--port', String(this.port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--maxmemory', '256mb', '--maxmemory-policy', 'allkeys-lru'],
      port: this.port,
      readyMs: 10_000
    })
  }

  async kill (): Promise<void> {
    const proc = this.#proc
    this.#proc = undefined
    if (proc === undefined) return
    const exited = new Promise((resolve) => proc.child.once('exit', resolve))
    proc.child.kill('SIGKILL')
    await exited
    await proc.stop(0) // forget it (already gone)
  }

  pause (): void { this.#proc?.child.kill('SIGSTOP') }
  resume (): void { this.#proc?.child.kill('SIGCONT') }
  async stop (): Promise<void> { await this.#proc?.stop(1000) }
}

// ---------------------------------------------------------------------------------------------
// Clients

type Kind = 'ok' | 'stale' | 'wrong-body' | 'aborted' | 'gateway-5xx' | 'origin-5xx' | 'other-status' | 'client-error'

interface Phase { redis: 'up' | 'down' | 'hung', origin: OriginMode }

const counts = new Map<Kind, number>()
const gatewayCodes = new Map<string, number>()
const details = new Map<string, number>()
const wrong: string[] = []
const latAll = new Latencies()
const latRedisFault = new Latencies()
const latCalm = new Latencies()
const latOriginFault = new Latencies()
let gateway5xxOutsideBursts = 0
let slowest = { ms: 0, what: '' }
let runStart = Date.now()
let hits = 0
let total = 0

function count<K> (m: Map<K, number>, k: K): void {
  m.set(k, (m.get(k) ?? 0) + 1)
}

function pick (): number {
  // Most requests go to a hot fifth of the items.
  return Math.random() < 0.8 ? Math.floor(Math.random() * (KEYS / 5)) : Math.floor(Math.random() * KEYS)
}

async function client (pool: Pool, phase: () => Phase, until: number): Promise<void> {
  while (Date.now() < until) {
    const n = pick()
    const at = phase()
    const started = performance.now()
    let kind: Kind
    let cacheStatus = ''
    try {
      const res = await pool.request({ method: 'GET', path: `/items/${n}`, headersTimeout: 30_000, bodyTimeout: 30_000 })
      cacheStatus = String(res.headers['cache-status'] ?? '')
      let body: Buffer | undefined
      try {
        body = Buffer.from(await res.body.arrayBuffer())
      } catch {
        body = undefined
      }
      if (body === undefined) {
        kind = 'aborted'
      } else if (res.statusCode === 200) {
        const expected = bodies[n] as Buffer
        if (body.equals(expected)) {
          kind = /stale-if-error/.test(cacheStatus) ? 'stale' : 'ok'
        } else {
          kind = 'wrong-body'
          if (wrong.length < 10) wrong.push(`/items/${n}: ${body.length} bytes, expected ${expected.length} (${cacheStatus})`)
        }
      } else if (res.statusCode >= 500) {
        const code = /"code":"(CG_ERR_[A-Z_]+)"/.exec(body.toString())?.[1]
        if (code !== undefined) {
          kind = 'gateway-5xx'
          count(gatewayCodes, `${res.statusCode} ${code}`)
          if (at.origin === 'normal' && phase().origin === 'normal') gateway5xxOutsideBursts++
        } else {
          kind = 'origin-5xx'
        }
      } else {
        kind = 'other-status'
      }
    } catch {
      kind = 'client-error'
    }
    const ms = performance.now() - started
    total++
    count(counts, kind)
    if (/; hit/.test(cacheStatus)) hits++
    const detail = /detail=([\w-]+)/.exec(cacheStatus)?.[1]
    if (detail !== undefined) count(details, detail)
    latAll.add(ms)
    if (ms > slowest.ms) slowest = { ms, what: `GET /items/${n} at ${((Date.now() - runStart) / 1000 - ms / 1000).toFixed(1)} s: ${kind}, ${cacheStatus === '' ? 'no Cache-Status' : cacheStatus}` }
    if (at.redis !== 'up') latRedisFault.add(ms)
    else if (at.origin === 'normal') latCalm.add(ms)
    else latOriginFault.add(ms)
  }
}

// ---------------------------------------------------------------------------------------------
// The run

async function main (): Promise<void> {
  const origin = createServer(originHandler)
  origin.keepAliveTimeout = 5000
  await new Promise<void>((resolve) => origin.listen(0, HOST, resolve))
  const originUrl = `http://${HOST}:${(origin.address() as { port: number }).port}`

  const redis = new RedisServer(await freePort())
  await redis.start()

  const dir = mkdtempSync(join(tmpdir(), 'cachegate-soak-'))
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
  const configFile = join(dir, 'routes.yaml')
  const redisUrl = `redis://${HOST}:${redis.port}`
  writeFileSync(configFile, JSON.stringify({
    listen: { host: HOST, port: 0 },
    admin: { host: HOST, port: 0 },
    redis: { url: redisUrl, keyPrefix: PREFIX, commandTimeout: '50ms', writeTimeout: '500ms', breaker: { failures: 5, cooldown: '2s' } },
    shutdownTimeout: '5s',
    routes: [{
      name: 'soak',
      origin: originUrl,
      staleIfError: '20s',
      timeouts: { connect: '1s', headers: '2s', body: '2s', total: '5s' },
      maxConnections: 64
    }]
  }, null, 2))
  const gwPort = await freePort()
  const gateway = await spawnNode({
    name: 'cachegate',
    script: 'src/main.ts',
    args: ['--config', configFile, '--port', String(gwPort), '--host', HOST],
    port: gwPort,
    env: { ...process.env, LOG_LEVEL: 'warn', NODE_ENV: 'production', REDIS_URL: '', PORT: '', HOST: '', ADMIN_PORT: '', CACHEGATE_ADMIN_TOKEN: '', CACHEGATE_CONFIG: '' }
  })
  // Counted as the lines stream by: the process keeps only the tail of its output.
  let breakerOpenings = 0
  let pending = ''
  gateway.child.stdout?.on('data', (chunk: Buffer) => {
    const lines = (pending + chunk.toString()).split('\n')
    pending = lines.pop() ?? ''
    for (const line of lines) if (line.includes('circuit breaker open')) breakerOpenings++
  })
  let gatewayExit: string | undefined
  gateway.child.once('exit', (code, signal) => { gatewayExit = `exited (code ${String(code)}, signal ${String(signal)})` })

  const pool = new Pool(`http://${HOST}:${gwPort}`, { connections: CLIENTS })
  const phase: Phase = { redis: 'up', origin: 'normal' }
  const start = Date.now()
  runStart = start
  const end = start + SECONDS * 1000
  const at = (fraction: number): number => start + fraction * SECONDS * 1000
  const log = (what: string): void => { process.stderr.write(`[${((Date.now() - start) / 1000).toFixed(1).padStart(5)} s] ${what}\n`) }

  const clients = Array.from({ length: CLIENTS }, async () => await client(pool, () => ({ ...phase }), end))

  const timeline: Array<[number, string, () => Promise<void> | void]> = [
    [0.10, 'redis: SIGKILL', async () => { phase.redis = 'down'; await redis.kill() }],
    [0.20, 'redis: started again (empty)', async () => { await redis.start(); phase.redis = 'up' }],
    [0.30, 'origin: failing (503, resets before headers, cut bodies)', () => { originMode = 'failing'; phase.origin = 'failing' }],
    [0.36, 'origin: healthy', () => { originMode = 'normal'; phase.origin = 'normal' }],
    [0.45, 'redis: SIGSTOP (hung)', () => { phase.redis = 'hung'; redis.pause() }],
    [0.50, 'redis: SIGCONT', () => { redis.resume(); phase.redis = 'up' }],
    [0.60, 'redis: SIGKILL', async () => { phase.redis = 'down'; await redis.kill() }],
    [0.70, 'redis: started again (empty)', async () => { await redis.start(); phase.redis = 'up' }],
    [0.80, 'origin: failing', () => { originMode = 'failing'; phase.origin = 'failing' }],
    [0.86, 'origin: healthy', () => { originMode = 'normal'; phase.origin = 'normal' }]
  ]
  log(`load: ${CLIENTS} clients for ${SECONDS} s`)
  for (const [fraction, what, act] of timeline) {
    const wait = at(fraction) - Date.now()
    if (wait > 0) await sleep(wait)
    log(what)
    await act()
  }
  await Promise.all(clients)
  log('load done')

  // Every entry left in Redis must be the origin's whole body for its URL.
  const check = new Redis(redisUrl, { maxRetriesPerRequest: 1 })
  const store = new RedisStore({ client: check, keyPrefix: PREFIX, clock: systemClock })
  let checked = 0
  let badEntries = 0
  for (let n = 0; n < KEYS; n++) {
    const { entry } = await store.lookup(`http://${HOST}:${gwPort}/items/${n}` as CacheKey)
    if (entry === null) continue
    checked++
    if (!entry.body.equals(bodies[n] as Buffer)) badEntries++
  }
  check.disconnect()

  const gatewayAlive = gatewayExit === undefined
  await pool.close()
  await gateway.stop(6000)
  await redis.stop()
  await new Promise<void>((resolve) => origin.close(() => resolve()))

  const [p50 = 0, p99 = 0, max = 0] = latAll.percentiles(50, 99, 100)
  const [calm99 = 0, calmMax = 0] = latCalm.percentiles(99, 100)
  const [origin99 = 0, originMax = 0] = latOriginFault.percentiles(99, 100)
  const [fault99 = 0, faultMax = 0] = latRedisFault.percentiles(99, 100)
  const c = (k: Kind): number => counts.get(k) ?? 0
  const lines = [
    '',
    `cachegate soak: ${SECONDS} s, ${CLIENTS} clients, ${KEYS} items (1 in 10 uncacheable), Redis killed twice and hung once, origin failing twice`,
    '',
    `requests                          ${fmt.int(total)} (${fmt.int(total / SECONDS)}/s), ${fmt.pct(hits / Math.max(1, total))} hits`,
    `  whole and correct               ${fmt.int(c('ok'))}`,
    `  stale-if-error (correct body)   ${fmt.int(c('stale'))}`,
    `  aborted (origin cut the body)   ${fmt.int(c('aborted'))}`,
    `  origin 5xx passed through       ${fmt.int(c('origin-5xx'))}`,
    `  gateway 5xx                     ${fmt.int(c('gateway-5xx'))}${gatewayCodes.size > 0 ? `  (${[...gatewayCodes].map(([k, v]) => `${k}: ${v}`).join(', ')})` : ''}`,
    `    outside origin failures       ${fmt.int(gateway5xxOutsideBursts)}   (must be 0)`,
    `  truncated or wrong bodies       ${fmt.int(c('wrong-body'))}   (must be 0)`,
    `  other statuses                  ${fmt.int(c('other-status'))}`,
    `  client errors                   ${fmt.int(c('client-error'))}   (must be 0)`,
    `latency p50 / p99 / max           ${fmt.ms(p50)} / ${fmt.ms(p99)} / ${fmt.ms(max)} ms`,
    `  p99 / max, all healthy          ${fmt.ms(calm99)} / ${fmt.ms(calmMax)} ms  (${fmt.int(latCalm.count)} requests)`,
    `  p99 / max while origin failing  ${fmt.ms(origin99)} / ${fmt.ms(originMax)} ms  (${fmt.int(latOriginFault.count)} requests)`,
    `  p99 / max, Redis down or hung   ${fmt.ms(fault99)} / ${fmt.ms(faultMax)} ms  (${fmt.int(latRedisFault.count)} requests)`,
    `  slowest                         ${fmt.ms(slowest.ms)} ms, ${slowest.what}`,
    `Cache-Status details              ${[...details].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}: ${fmt.int(v)}`).join(', ')}`,
    `breaker openings logged           ${breakerOpenings}`,
    `origin                            ${fmt.int(originCounts.requests)} requests, ${fmt.int(originCounts.failures)} answered with a fault`,
    `Redis entries checked afterwards  ${fmt.int(checked)}, wrong: ${badEntries}   (must be 0)`,
    `gateway process                   ${gatewayAlive ? 'alive until stopped' : gatewayExit ?? ''}`,
    ''
  ]
  if (wrong.length > 0) lines.push('wrong bodies:', ...wrong.map((w) => `  ${w}`), '')
  process.stdout.write(lines.join('\n') + '\n')
  const failed = c('wrong-body') > 0 || gateway5xxOutsideBursts > 0 || c('client-error') > 0 || badEntries > 0 || !gatewayAlive
  process.exitCode = failed ? 1 : 0
}

main().catch((err: unknown) => {
  process.stderr.write(`soak failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
  process.exitCode = 1
})
