import { once } from 'node:events'
import t from 'tap'
import type { Test } from 'tap'
import { Redis } from 'ioredis'
import type { Cluster } from 'ioredis'
import { encodeEntry } from '../../src/cache/entry-codec.ts'
import type { CacheKey } from '../../src/cache/key.ts'
import { ManualClock } from '../../src/clock.ts'
import { createRedisClient, RedisStore } from '../../src/store/redis.ts'
import { originIndexKeys, originsIndexKeys, tagIndexKeys, urlKeys } from '../../src/store/redis-keys.ts'
import { commandsSince, commandStats, startRedis } from '../helpers/redis.ts'
import { ALL_BYTES, key, makeEntry, PUT, sameEntry, storeContract, variant } from './contract.ts'

const NO_VARY = variant('')
const A = key('http://a.example/products/1')
const B = key('http://b.example/other')

async function ready (client: Redis | Cluster): Promise<void> {
  if (client.status !== 'ready') await once(client, 'ready')
}

/** Every key under `prefix` with its PTTL (SCAN is fine in a test; the store never scans). */
async function keysWithTtl (raw: Redis, prefix: string): Promise<Map<string, number>> {
  const out = new Map<string, number>()
  let cursor = '0'
  do {
    const [next, keys] = await raw.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
    cursor = next
    for (const k of keys) out.set(k, await raw.pttl(k))
  } while (cursor !== '0')
  return out
}

/** Asserts 0 < PTTL <= max for every key in `keys`, and that there is at least one. */
function assertTtls (t: Test, ttls: Map<string, number>, max: number, min = 1): void {
  t.ok(ttls.size > 0, 'the store wrote keys')
  for (const [k, ttl] of ttls) {
    if (!(ttl >= min && ttl <= max)) t.fail(`${k} has PTTL ${ttl}, expected ${min}..${max}`)
  }
  t.pass(`${ttls.size} keys have a TTL within ${min}..${max} ms`)
}

const server = await startRedis(t)
const client = createRedisClient({ url: server.url, commandTimeout: 2000 })
client.on('error', () => {})
t.teardown(() => client.disconnect())
await ready(client)
const raw = server.client()
let stores = 0
const storeWith = (clock = new ManualClock()) => {
  const keyPrefix = `s${++stores}:`
  return { store: new RedisStore({ client, keyPrefix, clock }), clock, keyPrefix }
}

await storeContract(t, 'redis', () => {
  const { store, clock, keyPrefix } = storeWith()
  return Promise.resolve({
    store,
    clock,
    // Redis expires in real time: check the TTL of every key written instead of waiting.
    assertExpires: async (t: Test, _url: CacheKey, ttlMs: number) => {
      const ttls = await keysWithTtl(raw, keyPrefix)
      t.ok(ttls.size >= 4 + 3, 'vary, variant set, 2 entries, origin/origins/tag indexes')
      assertTtls(t, ttls, ttlMs, ttlMs - 1000)
    }
  })
})

await t.test('redis: every key the store writes has a TTL', async (t) => {
  const { store, keyPrefix } = storeWith()
  await store.put(A, NO_VARY, makeEntry(A, { tags: ['p', 'q'] }), { ttlMs: 30_000, maxVariants: 4 })
  await store.put(B, variant('en'), makeEntry(B, { vary: { 'accept-language': 'en' }, tags: ['p'] }), { ttlMs: 90_000, maxVariants: 4 })
  await store.put(B, variant('fr'), makeEntry(B, { vary: { 'accept-language': 'fr' } }), { ttlMs: 10_000, maxVariants: 4 })
  await store.markStale(B, 1)
  await store.deleteVariant(A, variant('nope'))
  const ttls = await keysWithTtl(raw, keyPrefix)
  assertTtls(t, ttls, 90_000)
  const b = urlKeys(keyPrefix, B)
  t.ok((ttls.get(b.vary) ?? 0) > 80_000, 'the shared keys take the largest TTL of the URL\'s entries')
  t.ok((ttls.get(b.variants) ?? 0) > 80_000)
  t.ok((ttls.get(b.entry(variant('fr'))) ?? Infinity) <= 10_000, 'each entry keeps its own TTL (markStale kept it)')
  t.ok((ttls.get(tagIndexKeys(keyPrefix, 'p').members) ?? 0) > 80_000, 'index TTLs are extended, never shortened')
})

await t.test('redis: bodies are stored as raw bytes', async (t) => {
  const { store, keyPrefix } = storeWith()
  const body = Buffer.concat([ALL_BYTES, ALL_BYTES])
  await store.put(A, NO_VARY, makeEntry(A, { body }), PUT)
  const value = await raw.getBuffer(urlKeys(keyPrefix, A).entry(NO_VARY))
  t.ok(value !== null && value.subarray(value.length - body.length).equals(body), 'the value ends with the body verbatim')
  t.notOk(value?.includes(body.toString('base64')), 'no base64 copy')
})

await t.test('redis: lookup is one round trip (one MGET)', async (t) => {
  const { store } = storeWith()
  await store.put(A, NO_VARY, makeEntry(A), PUT)
  const before = await commandStats(raw)
  const found = await store.lookup(A)
  await store.lookup(B)
  const delta = await commandsSince(raw, before)
  t.not(found.entry, null)
  t.strictSame(delta, { mget: 2 }, 'two lookups, two MGETs, nothing else')
})

await t.test('redis: an entry stored under a URL\'s key for another URL is a miss', async (t) => {
  const { store, keyPrefix } = storeWith()
  const keys = urlKeys(keyPrefix, A)
  await raw.set(keys.vary, '[]')
  await raw.set(keys.entry(NO_VARY), encodeEntry(makeEntry(B)))
  t.strictSame(await store.lookup(A), { vary: [], entry: null })
  t.equal(await store.getVariant(A, NO_VARY), null)
  sameEntry(t, await store.getVariant(B, NO_VARY) ?? makeEntry(B), makeEntry(B), 'sanity: the codec itself is fine')
})

await t.test('redis: a purge removes the no-Vary entry even when its variant set was evicted', async (t) => {
  const { store, keyPrefix } = storeWith()
  await store.put(A, NO_VARY, makeEntry(A), PUT)
  await raw.unlink(urlKeys(keyPrefix, A).variants)
  t.equal(await store.markStale(A, 5), 1)
  t.equal(await store.deleteUrl(A), 1)
  t.strictSame(await store.lookup(A), { vary: null, entry: null })
})

await t.test('redis: malformed values are misses, not errors', async (t) => {
  const { store, keyPrefix } = storeWith()
  const keys = urlKeys(keyPrefix, A)
  await raw.set(keys.vary, '{not json')
  await raw.set(keys.entry(NO_VARY), Buffer.from('CGE\u0001\u0000\u0000\u0000\u0010{"url":', 'latin1'))
  t.strictSame(await store.lookup(A), { vary: null, entry: null })
  await raw.set(keys.vary, '["a",1]')
  t.strictSame(await store.lookup(A), { vary: null, entry: null })
})

await t.test('redis: entries really expire after ttlMs', async (t) => {
  const { store, keyPrefix } = storeWith()
  await store.put(A, NO_VARY, makeEntry(A), { ttlMs: 150, maxVariants: 4 })
  t.not((await store.lookup(A)).entry, null)
  const deadline = Date.now() + 5000
  while ((await store.lookup(A)).entry !== null && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25))
  t.strictSame(await store.lookup(A), { vary: null, entry: null })
  t.equal((await keysWithTtl(raw, keyPrefix)).size, 0, 'every key went, indexes included')
})

await t.test('redis: index members whose entries expired are dropped from reads and pruned on write', async (t) => {
  const { store, clock, keyPrefix } = storeWith()
  const u1 = key('http://a.example/1')
  const u2 = key('http://a.example/2')
  await store.put(u1, NO_VARY, makeEntry(u1, { tags: ['p'] }), { ttlMs: 1000, maxVariants: 4 })
  clock.advance(1000)
  t.strictSame(await store.urlsForTag('p'), [], 'expired by the clock: not listed')
  t.strictSame(await store.urlsForPrefix('http://a.example', ''), [])
  t.strictSame(await store.origins(), [])
  await store.put(u2, NO_VARY, makeEntry(u2, { tags: ['p'] }), { ttlMs: 1000, maxVariants: 4 })
  const tag = tagIndexKeys(keyPrefix, 'p')
  t.strictSame(await raw.zrange(tag.members, 0, -1), [u2], 'the next write pruned u1')
  t.strictSame(await raw.zrange(tag.expiry, 0, -1), [u2])
  const origin = originIndexKeys(keyPrefix, 'http://a.example')
  t.strictSame(await raw.zrange(origin.members, 0, -1), [u2])
  t.strictSame(await raw.zrange(originsIndexKeys(keyPrefix).members, 0, -1), ['http://a.example'])
})

await t.test('redis: key prefixes and client options are checked', async (t) => {
  const clock = new ManualClock()
  t.throws(() => new RedisStore({ client, keyPrefix: 'a{b}:', clock }), TypeError)
  const prefixed = new Redis({ port: server.port, keyPrefix: 'x:', lazyConnect: true })
  t.throws(() => new RedisStore({ client: prefixed, keyPrefix: 'cg:', clock }), TypeError)
  prefixed.disconnect()
  t.throws(() => createRedisClient({ commandTimeout: 100 }), TypeError)
  t.throws(() => createRedisClient({ url: server.url, cluster: ['127.0.0.1:1'], commandTimeout: 100 }), TypeError)
  t.throws(() => createRedisClient({ url: server.url, commandTimeout: 0 }), RangeError)
  await t.rejects(storeWith().store.put(A, NO_VARY, makeEntry(A), { ttlMs: 0, maxVariants: 1 }), RangeError)
})

await t.test('redis: errors propagate promptly when Redis is paused or down', async (t) => {
  const faulty = await startRedis(t)
  const commandTimeout = 300
  const c = createRedisClient({ url: faulty.url, commandTimeout })
  const errors: Error[] = []
  c.on('error', (err: Error) => errors.push(err))
  t.teardown(() => c.disconnect())
  await ready(c)
  const store = new RedisStore({ client: c, keyPrefix: 'f:', clock: new ManualClock() })
  await store.put(A, NO_VARY, makeEntry(A), PUT)

  const timed = async (what: string, p: Promise<unknown>): Promise<void> => {
    const started = Date.now()
    await t.rejects(p, `${what} rejects`)
    const elapsed = Date.now() - started
    t.ok(elapsed < commandTimeout + 700, `${what} rejected in ${elapsed} ms`)
  }

  faulty.pause()
  await timed('lookup on a paused server', store.lookup(A))
  await timed('put on a paused server', store.put(A, NO_VARY, makeEntry(A), PUT))
  faulty.resume()
  const deadline = Date.now() + 5000
  let back = false
  while (!back && Date.now() < deadline) {
    back = await store.lookup(A).then((r) => r.entry !== null, () => false)
  }
  t.ok(back, 'answers again once resumed')

  await faulty.stop()
  await timed('lookup on a stopped server', store.lookup(A))
  await timed('deleteUrl on a stopped server', store.deleteUrl(A))
  await faulty.start()
  await ready(c)
  t.strictSame(await store.lookup(A), { vary: null, entry: null }, 'reconnects to the restarted (empty) server')
})
