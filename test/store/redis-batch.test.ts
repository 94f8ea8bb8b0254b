/**
 * The reads of one event-loop turn share one MGET (src/store/redis-batch.ts), on a real
 * redis-server: every read gets its own keys' values and nothing else, a bad value in the middle
 * of a batch costs only its own read, and a batch that fails or stalls fails each read the way
 * one command of its own would have.
 */
import { once } from 'node:events'
import t from 'tap'
import type { Redis } from 'ioredis'
import { encodeEntry } from '../../src/cache/entry-codec.ts'
import type { CacheKey } from '../../src/cache/key.ts'
import { ManualClock, systemClock } from '../../src/clock.ts'
import { ReadTimeoutError } from '../../src/store/deadlines.ts'
import { StoreGuard } from '../../src/store/guard.ts'
import { ReadBatch } from '../../src/store/redis-batch.ts'
import { createRedisClient, RedisStore } from '../../src/store/redis.ts'
import { urlKeys } from '../../src/store/redis-keys.ts'
import type { InvalidEntry } from '../../src/store/store.ts'
import { CORRUPTIONS } from '../helpers/corrupt.ts'
import { commandsSince, commandStats, startRedis } from '../helpers/redis.ts'
import { key, makeEntry, PUT, sameEntry, variant } from './contract.ts'

const NO_VARY = variant('')

async function ready (client: Redis): Promise<void> {
  if (client.status !== 'ready') await once(client, 'ready')
}

const server = await startRedis(t)
const client = createRedisClient({ url: server.url, commandTimeout: 2000 }) as Redis
client.on('error', () => {})
t.teardown(() => client.disconnect())
await ready(client)
const raw = server.client()
let stores = 0

function storeWith (): { store: RedisStore, keyPrefix: string, reports: InvalidEntry[], reported: Promise<InvalidEntry> } {
  const keyPrefix = `b${++stores}:`
  const store = new RedisStore({ client, keyPrefix, clock: new ManualClock() })
  const reports: InvalidEntry[] = []
  const reported = new Promise<InvalidEntry>((resolve) => {
    store.onInvalidEntry((e) => {
      reports.push(e)
      resolve(e)
    })
  })
  return { store, keyPrefix, reports, reported }
}

const urls = Array.from({ length: 12 }, (_v, i) => key(`http://a.example/items/${i}`))
/** A body of its own per URL, so an entry served to the wrong lookup cannot look right. */
const entryOf = (url: CacheKey) => makeEntry(url, { body: Buffer.from(`body of ${url}`) })

await t.test('lookups asked in one turn share one MGET and each gets its own URL\'s entry', async (t) => {
  const { store } = storeWith()
  const stored = urls.filter((_u, i) => i % 3 !== 1)
  for (const u of stored) await store.put(u, NO_VARY, entryOf(u), PUT)
  const before = await commandStats(raw)
  // Every URL twice, in an order that interleaves present and missing ones.
  const asked = [...urls, ...[...urls].reverse()]
  const results = await Promise.all(asked.map(async (u) => await store.lookup(u)))
  t.same(await commandsSince(raw, before), { mget: 1 }, `${asked.length} lookups, one MGET`)
  asked.forEach((u, i) => {
    const r = results[i]
    if (stored.includes(u)) {
      t.same(r?.vary, [], `${u}: its Vary record`)
      sameEntry(t, r?.entry ?? null, entryOf(u), `${u}: its own entry`)
    } else {
      t.same(r, { vary: null, entry: null }, `${u}: missing, so nothing`)
    }
  })
})

await t.test('variant reads and lookups of one turn share the MGET, each answered with its own key', async (t) => {
  const { store } = storeWith()
  const [a, b] = urls as [CacheKey, CacheKey]
  const en = makeEntry(a, { vary: { 'accept-language': 'en' }, body: Buffer.from('en') })
  const fr = makeEntry(a, { vary: { 'accept-language': 'fr' }, body: Buffer.from('fr') })
  await store.put(a, variant('en'), en, PUT)
  await store.put(a, variant('fr'), fr, PUT)
  await store.put(b, NO_VARY, entryOf(b), PUT)
  const before = await commandStats(raw)
  const [la, gfr, lb, gde, gen] = await Promise.all([
    store.lookup(a), store.getVariant(a, variant('fr')), store.lookup(b), store.getVariant(a, variant('de')), store.getVariant(a, variant('en'))
  ])
  t.same(await commandsSince(raw, before), { mget: 1 })
  t.same(la, { vary: ['accept-language'], entry: null }, 'a varies: its record, no no-Vary entry')
  sameEntry(t, gfr, fr)
  sameEntry(t, lb.entry, entryOf(b))
  t.equal(gde, null)
  sameEntry(t, gen, en)
})

for (const c of [CORRUPTIONS[0], CORRUPTIONS.find((x) => x.problem === 'body-length'), CORRUPTIONS.find((x) => x.problem === 'format')]) {
  if (c === undefined) continue
  await t.test(`a value with ${c.name} in the middle of a batch is a miss, deleted and reported; the others are served`, async (t) => {
    const { store, keyPrefix, reports, reported } = storeWith()
    for (const u of urls) await store.put(u, NO_VARY, entryOf(u), PUT)
    const bad = urls[5] as CacheKey
    const keys = urlKeys(keyPrefix, bad)
    const good = await raw.getBuffer(keys.entry(NO_VARY))
    if (good === null) throw new Error('the put wrote nothing')
    await raw.set(keys.entry(NO_VARY), c.corrupt(good), 'KEEPTTL')
    const results = await Promise.all(urls.map(async (u) => await store.lookup(u)))
    urls.forEach((u, i) => {
      if (u === bad) t.same(results[i], { vary: [], entry: null }, 'the bad value reads as absent')
      else sameEntry(t, results[i]?.entry ?? null, entryOf(u), `${u} served`)
    })
    t.same(await reported, { url: bad, variant: NO_VARY, problem: c.problem, store: 'redis', deleted: true })
    // Another batch of reads: the bad value is gone, nothing else is reported.
    await Promise.all(urls.map(async (u) => await store.lookup(u)))
    t.equal(reports.length, 1, 'reported once')
    t.equal(await raw.exists(keys.entry(NO_VARY), keys.vary, keys.variants), 0, 'deleted with the URL\'s records')
  })
}

await t.test('an entry for another URL in the middle of a batch is not served, to it or to that URL\'s own lookup', async (t) => {
  const { store, keyPrefix, reported } = storeWith()
  for (const u of urls) await store.put(u, NO_VARY, entryOf(u), PUT)
  const [victim, other] = [urls[4] as CacheKey, urls[7] as CacheKey]
  // A foreign writer (or a hash collision) left `other`'s response under `victim`'s key.
  await raw.set(urlKeys(keyPrefix, victim).entry(NO_VARY), encodeEntry(entryOf(other)), 'KEEPTTL')
  const results = await Promise.all(urls.map(async (u) => await store.lookup(u)))
  urls.forEach((u, i) => {
    if (u === victim) t.same(results[i], { vary: [], entry: null }, 'the victim reads a miss, not the other URL\'s response')
    else sameEntry(t, results[i]?.entry ?? null, entryOf(u), `${u} served its own`)
  })
  t.match(await reported, { url: victim, problem: 'url', deleted: true })
})

await t.test('a turn with more keys than one MGET takes goes out in several, answered in the order asked', async (t) => {
  const batch = new ReadBatch(client, 5)
  const names = Array.from({ length: 9 }, (_v, i) => `rb:${i}`)
  for (const [i, n] of names.entries()) if (i !== 3) await raw.set(n, `v${i}`)
  const before = await commandStats(raw)
  const text = (v: Buffer | null): string | null => v === null ? null : v.toString()
  const reads = [
    batch.read([names[0] ?? '', names[1] ?? ''], (v, at) => [text(v[at] ?? null), text(v[at + 1] ?? null)]),
    batch.read([names[2] ?? ''], (v, at) => [text(v[at] ?? null)]),
    batch.read([names[3] ?? '', names[4] ?? ''], (v, at) => [text(v[at] ?? null), text(v[at + 1] ?? null)]),
    // More keys than one MGET takes: sent on its own, whole.
    batch.read(names.slice(2, 8), (v, at) => v.slice(at, at + 6).map((x) => text(x ?? null))),
    batch.read([names[8] ?? ''], (v, at) => [text(v[at] ?? null)])
  ]
  t.same(await Promise.all(reads), [['v0', 'v1'], ['v2'], [null, 'v4'], ['v2', null, 'v4', 'v5', 'v6', 'v7'], ['v8']])
  t.same(await commandsSince(raw, before), { mget: 3 }, '5 keys, then 6 keys alone, then 1')
  t.throws(() => new ReadBatch(client, 0), RangeError)
})

await t.test('a read whose answer throws fails alone; the others of its batch are answered', async (t) => {
  const batch = new ReadBatch(client)
  await raw.set('rb:x', 'x')
  const [a, b, c] = await Promise.allSettled([
    batch.read(['rb:x'], (v, at) => v[at]?.toString()),
    batch.read(['rb:x'], () => { throw new Error('boom') }),
    batch.read(['rb:x'], (v, at) => v[at]?.toString())
  ])
  t.same([a.status, b.status, c.status], ['fulfilled', 'rejected', 'fulfilled'])
  t.match(b, { reason: { message: 'boom' } })
})

await t.test('a stalled Redis fails every lookup of a batch by its own deadline, and they are answered again once it resumes', async (t) => {
  const stalled = await startRedis(t)
  const c = createRedisClient({ url: stalled.url, commandTimeout: undefined }) as Redis
  c.on('error', () => {})
  t.teardown(() => c.disconnect())
  await ready(c)
  const readTimeout = 150
  const guard = new StoreGuard({ failures: 1000, cooldown: 1000, clock: systemClock, readTimeout })
  const store = guard.store(new RedisStore({ client: c, keyPrefix: 's:', clock: new ManualClock() }))
  for (const u of urls) await store.put(u, NO_VARY, entryOf(u), PUT)
  stalled.pause()
  const started = performance.now()
  const settled = await Promise.all(urls.map(async (u) => {
    const err = await store.lookup(u).then(() => undefined, (e: unknown) => e)
    return { err, ms: performance.now() - started }
  }))
  stalled.resume()
  for (const { err, ms } of settled) {
    t.ok(err instanceof ReadTimeoutError, 'rejected by the read deadline')
    t.ok(ms >= readTimeout - 1 && ms < readTimeout + 500, `after ${Math.round(ms)} ms`)
  }
  t.equal(guard.reads.state, 'closed', 'with failures: 1000, counted but not opened')
  const back = await Promise.all(urls.map(async (u) => await store.lookup(u)))
  urls.forEach((u, i) => { sameEntry(t, back[i]?.entry ?? null, entryOf(u), `${u} answered again`) })
})

await t.test('a batch on a connection that is down fails each lookup with the error one command gets', async (t) => {
  const down = await startRedis(t)
  const c = createRedisClient({ url: down.url, commandTimeout: 300 }) as Redis
  c.on('error', () => {})
  t.teardown(() => c.disconnect())
  await ready(c)
  const store = new RedisStore({ client: c, keyPrefix: 'd:', clock: new ManualClock() })
  const closed = once(c, 'close')
  await down.stop()
  await closed
  const plain = await c.mgetBuffer('d:x', 'd:y').then(() => undefined, (e: unknown) => e)
  t.ok(plain instanceof Error, 'a command of its own is refused')
  const results = await Promise.allSettled(urls.map(async (u) => await store.lookup(u)))
  for (const r of results) t.match(r, { status: 'rejected', reason: { message: (plain as Error).message } })

  // And a command timeout of the client fails the whole batch like one command.
  await down.start()
  await ready(c)
  down.pause()
  const timedOut = await Promise.allSettled(urls.map(async (u) => await store.lookup(u)))
  down.resume()
  for (const r of timedOut) t.match(r, { status: 'rejected', reason: { message: 'Command timed out' } })
})
