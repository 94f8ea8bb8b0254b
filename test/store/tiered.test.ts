/**
 * TieredStore: the shared contract (L2 memory and L2 Redis), and the coherence rules: what
 * fills L1, what drops it, and that an invalidation racing a read never leaves an old copy.
 */
import { once } from 'node:events'
import t from 'tap'
import type { Test } from 'tap'
import type { Cluster } from 'ioredis'
import type { CacheEntry } from '../../src/cache/entry.ts'
import type { CacheKey, VariantId } from '../../src/cache/key.ts'
import { ManualClock } from '../../src/clock.ts'
import { LocalBus, type Bus } from '../../src/coordination/bus.ts'
import { MemoryStore } from '../../src/store/memory.ts'
import { RedisBus } from '../../src/coordination/redis.ts'
import { createRedisClient, RedisStore } from '../../src/store/redis.ts'
import type { Store, StoreLookup } from '../../src/store/store.ts'
import { CLEAR_ALL, TieredStore } from '../../src/store/tiered.ts'
import { startRedis } from '../helpers/redis.ts'
import { key, makeEntry, PUT, storeContract, variant } from './contract.ts'

const NO_VARY = variant('')
const A = key('http://a.example/products/1')
const B = key('http://a.example/products/2')
const CHANNEL = 'cg:inval'
const MAX_TTL = 5000
// makeEntry: responseTime is the ManualClock's start; freshness 60 s, stale windows up to 300 s.

interface Harness {
  tiered: TieredStore
  l2: Store
  clock: ManualClock
  bus: Bus
  published: string[]
}

function make (t: Test, options: { l2?: Store, clock?: ManualClock, bus?: Bus, useL1?: (url: CacheKey) => boolean } = {}): Harness {
  const clock = options.clock ?? new ManualClock()
  const l2 = options.l2 ?? new MemoryStore({ maxBytes: 10_000_000, clock })
  const bus = options.bus ?? new LocalBus()
  const published: string[] = []
  const tiered = new TieredStore({ l2, clock, maxBytes: 1_000_000, maxTtlMs: MAX_TTL, maxVariants: 8, useL1: options.useL1 ?? (() => true), bus, channel: CHANNEL })
  t.teardown(async () => await tiered.close())
  return { tiered, l2, clock, bus, published }
}

async function started (t: Test, options: Parameters<typeof make>[1] = {}): Promise<Harness> {
  const h = make(t, options)
  await h.tiered.start()
  await h.bus.subscribe(CHANNEL, (m) => h.published.push(m))
  return h
}

/**
 * An L1 copy lives min(l1MaxTtl, what is left of the entry's retention). ReadThrough stores
 * with ttlMs = the entry's retention, so the copy never outlives the L2 entry; a store call
 * with a shorter ttlMs (as here) may see the copy outlive it by up to l1MaxTtl.
 */
const expiresWithin = (store: Store, clock: ManualClock) => async (t: Test, url: CacheKey, ttlMs: number): Promise<void> => {
  clock.advance(ttlMs - 1)
  t.not((await store.lookup(url)).entry, null, 'still there just before (and copied into L1)')
  clock.advance(1 + MAX_TTL)
  t.strictSame(await store.lookup(url), { vary: null, entry: null }, 'gone at the latest l1MaxTtl after the L2 entry')
  t.equal(await store.getVariant(url, variant('x')), null)
}

await storeContract(t, 'tiered (memory L2)', async (t) => {
  const { tiered, clock } = await started(t)
  return { store: tiered, clock, assertExpires: expiresWithin(tiered, clock) }
})

const server = await startRedis(t)
const client = createRedisClient({ url: server.url, commandTimeout: 2000 })
client.on('error', () => {})
t.teardown(() => client.disconnect())
if (client.status !== 'ready') await once(client as Cluster, 'ready')
let prefixes = 0

await storeContract(t, 'tiered (redis L2)', async (t) => {
  const clock = new ManualClock()
  const { tiered } = await started(t, { clock, l2: new RedisStore({ client, keyPrefix: `t${++prefixes}:`, clock }) })
  return {
    store: tiered,
    clock,
    // Redis expires in real time (test/store/redis.test.ts checks the key TTLs): here, that
    // the L1 copy does not outlive l1MaxTtl, after which reads go to Redis again.
    assertExpires: async (t: Test, url: CacheKey) => {
      t.not((await tiered.lookup(url)).entry, null)
      const reads = tiered.stats().l2Reads
      await tiered.lookup(url)
      t.equal(tiered.stats().l2Reads, reads, 'served from L1')
      clock.advance(MAX_TTL)
      await tiered.lookup(url)
      t.equal(tiered.stats().l2Reads, reads + 1, 'after l1MaxTtl, read from Redis again')
    }
  }
})

/** An L2 whose reads wait until the test releases them. */
class GatedStore extends MemoryStore {
  gate: Promise<void> | undefined
  override async lookup (url: CacheKey): Promise<StoreLookup> {
    const value = await super.lookup(url)
    await this.gate
    return value
  }

  override async getVariant (url: CacheKey, v: VariantId): Promise<CacheEntry | null> {
    const value = await super.getVariant(url, v)
    await this.gate
    return value
  }
}

t.test('a read from L2 is copied into L1 and the next read does not reach L2', async (t) => {
  const { tiered } = await started(t)
  await tiered.put(A, NO_VARY, makeEntry(A), PUT)
  await tiered.put(B, variant('en'), makeEntry(B, { vary: { 'accept-language': 'en' } }), PUT)
  t.equal(tiered.stats().fills, 0, 'a put does not fill L1 (its own invalidation would drop it)')
  t.not((await tiered.lookup(A)).entry, null)
  t.not(await tiered.getVariant(B, variant('en')), null)
  t.match(tiered.stats(), { l2Reads: 2, fills: 2, l1Hits: 0 })
  t.not((await tiered.lookup(A)).entry, null)
  t.strictSame((await tiered.lookup(B)).vary, ['accept-language'], 'the Vary record comes from L1 with its variant')
  t.not(await tiered.getVariant(B, variant('en')), null)
  t.match(tiered.stats(), { l2Reads: 2, l1Hits: 3 })
  t.ok(tiered.stats().bytes > 0)
})

t.test('URLs whose route has no l1 are never copied', async (t) => {
  const { tiered } = await started(t, { useL1: (url) => url !== A })
  await tiered.put(A, NO_VARY, makeEntry(A), PUT)
  await tiered.lookup(A)
  await tiered.lookup(A)
  t.match(tiered.stats(), { l2Reads: 0, fills: 0, l1Hits: 0, entries: 0 }, 'straight to L2, uncounted')
})

t.test('every change is published on the invalidation channel, and drops the local copy', async (t) => {
  const { tiered, published } = await started(t)
  await tiered.put(A, NO_VARY, makeEntry(A), PUT)
  t.strictSame(published.splice(0), [A], 'put')
  await tiered.lookup(A)
  t.equal(tiered.stats().entries, 1)
  await tiered.markStale(A, 1)
  t.equal(tiered.stats().entries, 0, 'a soft purge drops the copy too')
  t.equal((await tiered.lookup(A)).entry?.invalidatedAt, 1, 'the next read sees the mark')
  await tiered.deleteVariant(A, NO_VARY)
  await tiered.put(A, NO_VARY, makeEntry(A), PUT)
  await tiered.deleteUrl(A)
  t.strictSame(published, [A, A, A, A], 'markStale, deleteVariant, put, deleteUrl')
})

t.test('a message from another instance drops the copy; "*" drops every copy', async (t) => {
  const { tiered, bus } = await started(t)
  await tiered.put(A, NO_VARY, makeEntry(A), PUT)
  await tiered.put(B, NO_VARY, makeEntry(B), PUT)
  await tiered.lookup(A)
  await tiered.lookup(B)
  t.equal(tiered.stats().entries, 2)
  await bus.publish(CHANNEL, A)
  t.equal(tiered.stats().entries, 1, 'A dropped, B kept')
  await bus.publish(CHANNEL, CLEAR_ALL)
  t.equal(tiered.stats().entries, 0)
})

t.test('a read in flight when its URL is invalidated does not fill L1 with what it read', async (t) => {
  const clock = new ManualClock()
  const l2 = new GatedStore({ maxBytes: 1_000_000, clock })
  const { tiered, bus } = await started(t, { clock, l2 })
  await l2.put(A, NO_VARY, makeEntry(A, { body: Buffer.from('old') }), PUT)
  let release!: () => void
  l2.gate = new Promise((resolve) => { release = resolve })
  const reading = tiered.lookup(A)
  await Promise.resolve()
  // Another instance replaces the entry and says so while this read is in flight.
  await l2.put(A, NO_VARY, makeEntry(A, { body: Buffer.from('new') }), PUT)
  await bus.publish(CHANNEL, A)
  release()
  t.equal((await reading).entry?.body.toString(), 'old', 'the read itself returns what it saw')
  t.equal(tiered.stats().fills, 0, 'but it is not copied into L1')
  l2.gate = undefined
  t.equal((await tiered.lookup(A)).entry?.body.toString(), 'new', 'the next read goes to L2')
})

t.test('a read racing a local change does not leave the old entry in L1', async (t) => {
  const clock = new ManualClock()
  const l2 = new GatedStore({ maxBytes: 1_000_000, clock })
  const { tiered } = await started(t, { clock, l2 })
  await l2.put(A, NO_VARY, makeEntry(A, { body: Buffer.from('old') }), PUT)
  let release!: () => void
  l2.gate = new Promise((resolve) => { release = resolve })
  const reading = tiered.getVariant(A, NO_VARY)
  await tiered.deleteUrl(A)
  release()
  await reading
  l2.gate = undefined
  t.equal((await tiered.lookup(A)).entry, null, 'the deleted entry is not served from L1')
})

t.test('an L1 copy lives at most l1MaxTtl, and never past the entry\'s retention', async (t) => {
  const { tiered, clock } = await started(t)
  await tiered.put(A, NO_VARY, makeEntry(A), PUT)
  await tiered.lookup(A)
  clock.advance(MAX_TTL - 1)
  await tiered.lookup(A)
  t.match(tiered.stats(), { l2Reads: 1, l1Hits: 1 })
  clock.advance(1)
  await tiered.lookup(A)
  t.match(tiered.stats(), { l2Reads: 2, fills: 2 }, 'expired from L1 at l1MaxTtl: read from L2 again')

  const short = makeEntry(B, { freshness: 1000, initialAge: 0, staleWhileRevalidate: 0, staleIfError: 0, responseTime: clock.now() })
  await tiered.put(B, NO_VARY, short, { ttlMs: 1000, maxVariants: 8 })
  await tiered.lookup(B)
  clock.advance(1000)
  t.equal((await tiered.lookup(B)).entry, null, 'an entry retained for 1 s leaves L1 after 1 s')
})

t.test('a reconnect clears L1: messages may have been lost (fake bus)', async (t) => {
  const handlers: Array<() => void> = []
  const local = new LocalBus()
  const bus: Bus = {
    publish: async (c, m) => await local.publish(c, m),
    subscribe: async (c, h) => await local.subscribe(c, h),
    onReconnect: (h) => { handlers.push(h) },
    close: async () => await local.close()
  }
  const { tiered } = await started(t, { bus })
  await tiered.put(A, NO_VARY, makeEntry(A), PUT)
  await tiered.lookup(A)
  t.equal(tiered.stats().entries, 1)
  for (const h of handlers) h()
  t.match(tiered.stats(), { entries: 0, clears: 1 })
})

t.test('a reconnect clears L1: messages may have been lost (Redis restarted)', async (t) => {
  const redis = await startRedis(t)
  const c = createRedisClient({ url: redis.url, commandTimeout: 2000 })
  c.on('error', () => {})
  t.teardown(() => c.disconnect())
  if (c.status !== 'ready') await once(c as Cluster, 'ready')
  const redisBus = new RedisBus(c, () => {})
  t.teardown(async () => await redisBus.close())
  let reconnected!: () => void
  const back = new Promise<void>((resolve) => { reconnected = resolve })
  // Observe the reconnect after the store's own handler ran.
  const bus: Bus = {
    publish: async (ch, m) => await redisBus.publish(ch, m),
    subscribe: async (ch, h) => await redisBus.subscribe(ch, h),
    onReconnect: (h) => redisBus.onReconnect(() => { h(); reconnected() }),
    close: async () => await redisBus.close()
  }
  const clock = new ManualClock()
  const { tiered } = await started(t, { bus, clock })
  await tiered.put(A, NO_VARY, makeEntry(A), PUT)
  await tiered.lookup(A)
  t.equal(tiered.stats().entries, 1)
  await redis.stop()
  await redis.start()
  await back
  t.match(tiered.stats(), { entries: 0, clears: 1 }, 'L1 was cleared when the subscriber came back')
})

t.test('bulk: L2 changes are not announced one by one; one "*" drops every copy everywhere', async (t) => {
  const bus = new LocalBus()
  const a = await started(t, { bus })
  const clock = a.clock
  const b = await started(t, { bus, clock, l2: a.l2 })
  await a.tiered.put(A, NO_VARY, makeEntry(A), PUT)
  await a.tiered.put(B, NO_VARY, makeEntry(B), PUT)
  for (const h of [a, b]) {
    await h.tiered.lookup(A)
    await h.tiered.lookup(B)
  }
  a.published.splice(0)
  const n = await a.tiered.bulk(async (l2) => (await l2.deleteUrl(A)) + (await l2.deleteUrl(B)))
  t.equal(n, 2)
  t.strictSame(a.published, [CLEAR_ALL], 'one message')
  t.match(b.tiered.stats(), { entries: 0, clears: 1 }, 'the other instance dropped its copies')
  t.equal((await b.tiered.lookup(A)).entry, null)
  t.equal(a.tiered.stats().entries, 0)
})
