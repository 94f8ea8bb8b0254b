// The backend the configuration names: memory with local coordination, or Redis (a real
// redis-server) behind the guard, with locks and bus that coordinate through it.
import t from 'tap'
import { makeBackend, localBackend, redisReady } from '../src/backend.ts'
import { ManualClock } from '../src/clock.ts'
import { parseConfig } from '../src/config/load.ts'
import type { CacheKey } from '../src/cache/key.ts'
import { createLogger } from '../src/observability/logger.ts'
import { MemoryStore } from '../src/store/memory.ts'
import { startRedis } from './helpers/redis.ts'

const logger = createLogger({ level: 'silent', pretty: false })
const URL_A = 'http://shop.example/a' as CacheKey

t.test('without redis: a memory store and local locks, so two acquisitions of one lock exclude each other', async (t) => {
  const config = parseConfig(JSON.stringify({ routes: [{ origin: 'http://127.0.0.1:9' }] }), 'test.yaml', {})
  const b = makeBackend(config, new ManualClock(), logger)
  t.teardown(async () => await b.close())
  t.equal(b.store.kind, 'memory')
  t.equal(b.redis, undefined)
  t.not(await b.locks.acquire(URL_A, 'fill', '?', 1000), null)
  t.equal(await b.locks.acquire(URL_A, 'fill', '?', 1000), null)
})

t.test('with redis: the Redis store, locks shared through Redis with another backend, prefixed channels', async (t) => {
  const redis = await startRedis(t)
  const config = parseConfig(JSON.stringify({ routes: [{ origin: 'http://127.0.0.1:9' }], redis: { url: redis.url, keyPrefix: 'bk:' } }), 'test.yaml', {})
  const a = makeBackend(config, new ManualClock(), logger)
  const b = makeBackend(config, new ManualClock(), logger)
  t.teardown(async () => { await a.close(); await b.close() })
  t.equal(a.store.kind, 'redis')
  t.equal(a.prefix, 'bk:')
  t.ok(a.redis !== undefined && await redisReady(a.redis, 2000), 'connected')
  const token = await a.locks.acquire(URL_A, 'fill', '?', 5000)
  t.not(token, null)
  t.equal(await b.locks.acquire(URL_A, 'fill', '?', 5000), null, 'the other instance sees the lock')
  t.equal(await b.locks.held(URL_A, 'fill', '?'), true)
})

t.test('a Redis that is down: redisReady gives up after its bound and the backend still closes', async (t) => {
  const redis = await startRedis(t)
  await redis.stop()
  const config = parseConfig(JSON.stringify({ routes: [{ origin: 'http://127.0.0.1:9' }], redis: { url: redis.url } }), 'test.yaml', {})
  const b = makeBackend(config, new ManualClock(), logger)
  t.equal(b.redis !== undefined && await redisReady(b.redis, 100), false)
  await b.close()
})

t.test('a given store gets local coordination and is not closed by the backend', async (t) => {
  const clock = new ManualClock()
  const store = new MemoryStore({ maxBytes: 1024, clock })
  const b = localBackend(store, clock)
  t.equal(b.store, store)
  await b.close()
  t.same(await store.lookup(URL_A), { vary: null, entry: null }, 'still usable')
})
