/**
 * Redis faults, with a real redis-server per test that the test kills (SIGKILL), hangs
 * (SIGSTOP), blocks or fills. Whatever Redis does, every client gets the origin's complete
 * answer within a bounded delay, the store never holds a partial or foreign entry, the
 * breaker bypasses Redis while it is gone and uses it again once it answers.
 */
import t from 'tap'
import type { Test } from 'tap'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { request } from 'undici'
import { normalizeRequestUrl, type CacheKey } from '../../src/cache/key.ts'
import { withGateway, type GatewayHandle } from '../helpers/gateway.ts'
import { startOrigin, type Origin } from '../helpers/origin.ts'
import { startRedis, type RedisServer } from '../helpers/redis.ts'

const COMMAND_TIMEOUT = 50
/** Breakers run on real time (they measure real I/O), so the cool-down is short. */
const COOLDOWN = 300
/** Every request during a fault completes well within this (the origin answers in a few ms). */
const BOUND_MS = 1000

const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

/** The origin's body for a path: a few KiB naming the path, so a body for another URL or a cut one shows. */
function bodyFor (path: string, size = 4096): string {
  const unit = `<${path}>`
  return unit.repeat(Math.ceil(size / unit.length)).slice(0, size)
}

function cacheable (size?: (path: string) => number, delayMs = 0): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (req, res) => {
    if (delayMs > 0) await sleep(delayMs)
    const path = req.url ?? '/'
    const body = bodyFor(path, size?.(path))
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), 'cache-control': 'max-age=600' })
    res.end(body)
  }
}

async function gatewayOn (t: Test, redis: RedisServer, origin: Origin, extra: Record<string, unknown> = {}): Promise<GatewayHandle> {
  return await withGateway(t, {
    config: {
      redis: { url: redis.url, commandTimeout: `${COMMAND_TIMEOUT}ms`, writeTimeout: '500ms', breaker: { failures: 3, cooldown: `${COOLDOWN}ms` }, ...extra },
      routes: [{ origin: origin.url }]
    }
  })
}

function keyOf (gw: GatewayHandle, path: string): CacheKey {
  const n = normalizeRequestUrl({ scheme: 'http', host: new URL(gw.url).host, target: path })
  if (!n.ok) throw new Error(n.reason)
  return n.key
}

interface Sample { path: string, status: number, ms: number, complete: boolean, cacheStatus: string, error?: string }

async function sample (gw: GatewayHandle, path: string, size?: number): Promise<Sample> {
  const started = performance.now()
  try {
    const res = await request(gw.url + path)
    const body = await res.body.text()
    return { path, status: res.statusCode, ms: performance.now() - started, complete: body === bodyFor(path, size), cacheStatus: String(res.headers['cache-status']) }
  } catch (err) {
    return { path, status: 0, ms: performance.now() - started, complete: false, cacheStatus: '', error: (err as Error).message }
  }
}

/** Concurrent clients asking for `paths` in turn until stopped. */
function load (gw: GatewayHandle, paths: string[], clients: number): { stop: () => Promise<Sample[]> } {
  const samples: Sample[] = []
  const state = { running: true }
  const workers = Array.from({ length: clients }, async (_, w) => {
    for (let i = w; state.running; i += clients) samples.push(await sample(gw, paths[i % paths.length] as string))
  })
  return {
    stop: async () => {
      state.running = false
      await Promise.all(workers)
      return samples
    }
  }
}

/** Nothing stored is partial or another URL's: each key is absent or holds exactly the origin's body. */
async function assertStoreClean (t: Test, gw: GatewayHandle, paths: string[], size?: number): Promise<number> {
  let stored = 0
  for (const path of paths) {
    const { entry } = await gw.gateway.store.lookup(keyOf(gw, path))
    if (entry === null) continue
    stored++
    t.equal(entry.body.toString(), bodyFor(path, size), `the entry stored for ${path} is the origin's whole body`)
  }
  return stored
}

/** Asks (every cool-down) until a request uses the store again. */
async function untilStoreUsed (gw: GatewayHandle, path: string, deadlineMs = 10_000): Promise<Sample> {
  const deadline = Date.now() + deadlineMs
  for (;;) {
    await sleep(COOLDOWN)
    const s = await sample(gw, path)
    if ((/; hit|; stored/.test(s.cacheStatus) && !/store-/.test(s.cacheStatus)) || Date.now() > deadline) return s
  }
}

/** Asks until the breaker has opened (a request says the store was bypassed); every answer is kept. */
async function untilBypassed (gw: GatewayHandle, path: (i: number) => string, deadlineMs = 5000): Promise<Sample[]> {
  const deadline = Date.now() + deadlineMs
  const samples: Sample[] = []
  for (let i = 0; ; i++) {
    const s = await sample(gw, path(i))
    samples.push(s)
    if (/store-bypassed/.test(s.cacheStatus) || Date.now() > deadline) return samples
    await sleep(10)
  }
}

const paths = Array.from({ length: 16 }, (_, i) => `/items/${i}`)

t.test('Redis killed with SIGKILL under load and started again: every answer is whole and correct, the store is bypassed while Redis is gone and used again when it is back', async (t) => {
  const redis = await startRedis(t)
  const origin = await startOrigin(t, cacheable())
  const gw = await gatewayOn(t, redis, origin)
  for (const p of paths) await gw.get(p)
  await gw.settled()

  const running = load(gw, paths, 8)
  await sleep(300)
  await redis.stop()
  await sleep(700)
  await redis.start()
  const recovered = await untilStoreUsed(gw, '/items/0')
  await sleep(300)
  const samples = await running.stop()
  await gw.settled()

  t.ok(samples.length > 100, `${samples.length} requests were made`)
  t.same(samples.filter((s) => s.status !== 200 || !s.complete), [], 'every client got a 200 with the whole, right body')
  const slowest = Math.max(...samples.map((s) => s.ms))
  t.ok(slowest < BOUND_MS, `the slowest request took ${slowest.toFixed(0)} ms (bound ${BOUND_MS} ms)`)
  t.ok(samples.some((s) => /detail=store-bypassed/.test(s.cacheStatus)), 'while Redis was down the store was bypassed (Cache-Status detail=store-bypassed)')
  t.ok(samples.some((s) => /; hit/.test(s.cacheStatus)), 'hits before the kill')
  t.notMatch(recovered.cacheStatus, /store-/, `the store is used again after the restart (${recovered.cacheStatus})`)
  t.ok(gw.logLines.some((l) => l.includes('circuit breaker open')), 'the opening was logged')
  t.ok(gw.logLines.some((l) => l.includes('circuit breaker closed')), 'the closing was logged')

  const again = await sample(gw, '/items/5')
  await gw.settled()
  const hit = await sample(gw, '/items/5')
  t.ok(again.complete && hit.complete)
  t.match(hit.cacheStatus, /; hit/, 'the restarted (empty) Redis is filled and hit again')
  await assertStoreClean(t, gw, paths)
})

t.test('a hung Redis (SIGSTOP) costs a request at most a couple of command timeouts until the breaker opens, then nothing; requests in flight complete', async (t) => {
  const redis = await startRedis(t)
  // A slow origin, so requests are surely in flight when Redis stops answering.
  const origin = await startOrigin(t, cacheable(undefined, 150))
  const gw = await gatewayOn(t, redis, origin)
  for (const p of paths.slice(0, 4)) await gw.get(p)
  await gw.settled()
  const fresh = ['/new/1', '/new/2', '/new/3', '/new/4', '/new/5', '/new/6']
  const inFlight = Promise.all(fresh.map(async (p) => await sample(gw, p)))
  await sleep(50)
  redis.pause()
  t.teardown(() => redis.resume())

  const during: Sample[] = []
  for (let i = 0; i < 12; i++) during.push(await sample(gw, paths[i % 4] as string))
  const flown = await inFlight
  t.same(flown.filter((s) => s.status !== 200 || !s.complete), [], 'requests in flight when Redis hung completed whole')
  t.same(during.filter((s) => s.status !== 200 || !s.complete), [], 'requests during the hang are answered whole by the origin')
  // Origin 150 ms; before the breaker opens a miss may wait for the lookup and the fill lock.
  const bound = 150 + 2 * COMMAND_TIMEOUT + 400
  for (const s of during) t.ok(s.ms < bound, `${s.path}: ${s.ms.toFixed(0)} ms < ${bound} ms (${s.cacheStatus})`)
  t.match(during[0]?.cacheStatus, /detail=store-unavailable/, 'the first request says the store failed')
  t.match(during.at(-1)?.cacheStatus, /detail=store-bypassed/, 'later ones say it was bypassed')
  t.notMatch(during.at(-1)?.cacheStatus, /stored/, 'and do not claim to store')
  t.equal(during.filter((s) => /store-unavailable/.test(s.cacheStatus)).length <= 3, true, 'at most `failures` requests paid a timeout')

  redis.resume()
  await gw.settled()
  const back = await untilStoreUsed(gw, paths[0] as string)
  t.match(back.cacheStatus, /; hit/, 'entries stored before the hang are hits again once Redis answers')
  await assertStoreClean(t, gw, [...paths.slice(0, 4), ...fresh])
})

t.test('an event-loop stall longer than the command timeout fails no lookup whose reply arrived meanwhile, and does not open the breaker', async (t) => {
  const redis = await startRedis(t)
  const origin = await startOrigin(t, cacheable())
  const gw = await gatewayOn(t, redis, origin, { breaker: { failures: 2, cooldown: `${COOLDOWN}ms` } })
  for (const p of paths) await gw.get(p)
  await gw.settled()
  // Sixteen connections open and warm, so the burst reaches the store quickly.
  await Promise.all(paths.map(async (p) => await sample(gw, p)))
  const direct = redis.client()
  await direct.ping()
  // Hold Redis for 40 ms (less than the command timeout) so the burst's lookups are surely in flight.
  const held = direct.eval(`
    local t0 = redis.call('TIME')
    while true do
      local t1 = redis.call('TIME')
      if (t1[1] - t0[1]) * 1000000 + t1[2] - t0[2] > 40000 then break end
    end
    return 1`, 0)
  await sleep(5)
  const burst = Promise.all(paths.map(async (p) => await sample(gw, p)))
  await sleep(25)
  // The gateway runs in this process: block its event loop past the command timeout, as a long
  // GC pause or a CPU-bound burst would. Redis answers meanwhile, but when the loop comes back
  // the expired timers run before the replies are read (blocking in the check phase makes that
  // order certain); the read deadline waits for the poll phase before it gives up.
  await new Promise<void>((resolve) => setImmediate(() => {
    const until = performance.now() + 4 * COMMAND_TIMEOUT
    while (performance.now() < until) { /* busy */ }
    resolve()
  }))
  await held
  const replies = await burst
  t.same(replies.filter((s) => s.status !== 200 || !s.complete), [], 'every request was answered whole')
  await gw.settled()
  const after = await sample(gw, '/items/3')
  const timedOut = replies.filter((s) => /store-unavailable/.test(s.cacheStatus)).length
  t.equal(timedOut, 0, 'no lookup was failed for a reply that had arrived during the stall')
  t.match(after.cacheStatus, /; hit/, 'the next request is a hit: the breaker stayed closed')
  t.notOk(gw.logLines.some((l) => l.includes('circuit breaker open')))
})

t.test('a Redis that is down when the gateway starts: the gateway serves from the origin and fills the cache once Redis is up', async (t) => {
  const redis = await startRedis(t)
  await redis.stop()
  const origin = await startOrigin(t, cacheable())
  const gw = await gatewayOn(t, redis, origin)
  const down = await untilBypassed(gw, () => '/items/1')
  t.same(down.filter((s) => s.status !== 200 || !s.complete), [])
  t.ok(down.every((s) => s.ms < BOUND_MS), 'each answered promptly')
  t.match(down.at(-1)?.cacheStatus, /detail=store-bypassed/, `the breaker opened after ${down.length} requests`)
  await redis.start()
  const up = await untilStoreUsed(gw, '/items/1')
  t.notMatch(up.cacheStatus, /store-/)
  await gw.settled()
  t.match((await sample(gw, '/items/1')).cacheStatus, /; hit/)
})

t.test('while the store is bypassed, concurrent misses for one key are still coalesced inside the instance', async (t) => {
  const redis = await startRedis(t)
  const origin = await startOrigin(t, cacheable(undefined, 100))
  const gw = await gatewayOn(t, redis, origin)
  await redis.stop()
  t.match((await untilBypassed(gw, (i) => `/warm/${i}`)).at(-1)?.cacheStatus, /store-bypassed/)
  const before = origin.count('/hot')
  const burst = await Promise.all(Array.from({ length: 50 }, async () => await sample(gw, '/hot')))
  t.same(burst.filter((s) => s.status !== 200 || !s.complete), [], 'all 50 got the whole body')
  t.ok(burst.every((s) => /store-bypassed|collapsed/.test(s.cacheStatus)), 'the store (and its fill lock) was bypassed')
  t.equal(origin.count('/hot') - before, 1, 'the origin was asked once')
})

t.test('a store write slower than the read timeout but within writeTimeout is kept', async (t) => {
  const redis = await startRedis(t)
  const origin = await startOrigin(t, cacheable())
  const gw = await gatewayOn(t, redis, origin)
  await gw.get('/warm')
  await gw.settled()
  // A Lua busy loop blocks Redis for 250 ms: the lookup times out, the write waits and lands.
  const blocker = redis.client()
  await blocker.ping()
  const blocked = blocker.eval(`
    local t0 = redis.call('TIME')
    local start = t0[1] * 1000000 + t0[2]
    while true do
      local t1 = redis.call('TIME')
      if t1[1] * 1000000 + t1[2] - start > 250000 then break end
    end
    return 1`, 0)
  await sleep(20)
  const s = await sample(gw, '/slow-write')
  t.ok(s.complete)
  t.match(s.cacheStatus, /detail=store-unavailable/, 'the lookup timed out')
  t.ok(s.ms < BOUND_MS, `answered in ${s.ms.toFixed(0)} ms`)
  await blocked
  await gw.settled()
  t.equal(await assertStoreClean(t, gw, ['/slow-write']), 1, 'the write waited for Redis and was stored')
})

t.test('a full Redis (maxmemory with noeviction): refused writes are dropped, hits keep being served, nothing partial is stored', async (t) => {
  const redis = await startRedis(t, { maxmemory: '2mb', policy: 'noeviction' })
  const size = 256 * 1024
  const origin = await startOrigin(t, cacheable((p) => p.startsWith('/big/') ? size : 4096))
  const gw = await gatewayOn(t, redis, origin)
  await gw.get('/small')
  await gw.settled()
  const bigs = Array.from({ length: 16 }, (_, i) => `/big/${i}`)
  const replies: Sample[] = []
  for (const p of bigs) {
    replies.push(await sample(gw, p, size))
    await gw.settled()
  }
  t.same(replies.filter((s) => s.status !== 200 || !s.complete), [], 'every big response reached its client whole')
  t.ok(replies.every((s) => s.ms < BOUND_MS), 'promptly')
  const stored = await assertStoreClean(t, gw, bigs, size)
  t.ok(stored < bigs.length, `Redis refused some writes (${stored} of ${bigs.length} stored)`)
  t.ok(gw.logLines.some((l) => l.includes('OOM command not allowed')), 'the refusal was logged')
  t.ok(gw.logLines.some((l) => l.includes('"breaker":"store-writes"') && l.includes('circuit breaker open')), 'the write breaker opened')
  t.notOk(gw.logLines.some((l) => l.includes('"breaker":"store"') && l.includes('circuit breaker open')), 'the read breaker did not: Redis still answers')
  const small = await sample(gw, '/small')
  t.match(small.cacheStatus, /; hit/, 'an entry stored before Redis filled up is still a hit')
  t.ok(small.complete)
})

t.test('a write Redis refuses is dropped, never retried', async (t) => {
  const redis = await startRedis(t, { policy: 'noeviction' })
  const origin = await startOrigin(t, cacheable())
  const gw = await gatewayOn(t, redis, origin, { breaker: { failures: 1000, cooldown: '1s' } })
  const direct = redis.client()
  // A first miss loads the store's scripts into Redis, so what follows has no NOSCRIPT fallbacks.
  await gw.get('/warm')
  await gw.settled()
  // From now on Redis is over its limit: it refuses every write (OOM) and still answers reads.
  await direct.config('SET', 'maxmemory', '1')
  const attempts = async (): Promise<number> => {
    const info = await direct.info('commandstats')
    let n = 0
    // calls counts commands run (failed ones too), rejected_calls those refused before running.
    for (const m of info.matchAll(/cmdstat_(?:evalsha|eval|set):calls=(\d+),[^\r\n]*?rejected_calls=(\d+)/g)) n += Number(m[1]) + Number(m[2])
    return n
  }
  const before = await attempts()
  const s = await sample(gw, '/refused')
  await gw.settled()
  const after = await attempts()
  t.ok(s.complete && s.status === 200, 'the client got the whole answer')
  t.match(s.cacheStatus, /fwd=uri-miss/)
  // Today: the fill lock's acquire script and the put's two index scripts (this origin, all
  // origins) and one SET, each refused once, and the lock's release script; the entry itself is
  // never sent, since the put stops at its first refusal. A retry would at least double that.
  t.ok(after - before >= 1 && after - before <= 5, `${after - before} write commands reached Redis for one miss, each once`)
  await sleep(300)
  t.equal(await attempts(), after, 'and none later')
  t.ok(gw.logLines.some((l) => l.includes('OOM command not allowed') && l.includes('"op":"put"')), 'the dropped write was logged')
  t.equal(await assertStoreClean(t, gw, ['/refused']), 0, 'nothing was stored')
  t.match((await sample(gw, '/warm')).cacheStatus, /; hit/, 'reads still hit')
})
