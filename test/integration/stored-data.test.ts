/**
 * Stored data is untrusted input, through the whole gateway: an entry damaged or forged in the
 * store (raw bytes in Redis, an object in the memory store) is never served and never crashes
 * the gateway. The client gets the origin's answer, the entry is deleted, the metric counts it
 * and the log names the key once. Both stores, the fast path (plain GET) and the full path.
 */
import t, { type Test } from 'tap'
import type { CacheEntry } from '../../src/cache/entry.ts'
import type { CacheKey, VariantId } from '../../src/cache/key.ts'
import { MemoryStore } from '../../src/store/memory.ts'
import { urlKeys } from '../../src/store/redis-keys.ts'
import type { InvalidEntry, PutOptions, Store, StoreLookup } from '../../src/store/store.ts'
import { ManualClock } from '../../src/clock.ts'
import { CORRUPTIONS } from '../helpers/corrupt.ts'
import { withGateway, type GatewayHandle, type Reply } from '../helpers/gateway.ts'
import { startOrigin, type Origin } from '../helpers/origin.ts'
import { Scrape } from '../helpers/prometheus.ts'
import { startRedis } from '../helpers/redis.ts'

const NO_VARY = '' as VariantId
const LOG_MSG = 'invalid stored entry: served from the origin and deleted'

/** Answers `<path> #<n>` (n counts the origin's requests), fresh for a minute, with an ETag. */
async function countingOrigin (t: Test): Promise<Origin> {
  return await startOrigin(t, (req, res, n) => {
    const body = `${req.url ?? ''} #${n}`
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60', etag: `"v${n}"`, 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
}

/** The next report of an invalid entry for `key`. */
async function invalidReported (gw: GatewayHandle, key: CacheKey): Promise<InvalidEntry> {
  return await new Promise((resolve) => {
    let off = (): void => undefined
    off = gw.gateway.store.onInvalidEntry?.((e) => {
      if (e.url !== key) return
      off()
      resolve(e)
    }) ?? off
  })
}

async function invalidCount (gw: GatewayHandle, reason: string): Promise<number> {
  return new Scrape(await gw.gateway.metrics.text()).sum('cachegate_store_invalid_entries_total', { reason })
}

function logLinesFor (gw: GatewayHandle, key: CacheKey): Record<string, unknown>[] {
  return gw.logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === LOG_MSG && l.url === key)
}

/** The client got the origin's fresh answer: the n-th origin request, no stored field. */
function fromOrigin (t: Test, res: Reply, path: string, origin: Origin, before: number): void {
  t.equal(res.status, 200, 'a 200 from the origin, never a 5xx')
  t.equal(origin.count(), before + 1, 'the origin was asked')
  t.equal(res.body, `${path} #${origin.count()}`, 'the origin\'s new body, not the stored one')
  t.equal(res.header('etag'), `"v${origin.count()}"`)
  t.equal(res.header('x-evil'), undefined, 'no field of the refused entry')
  t.equal(res.header('set-cookie'), undefined)
}

const PATHS = { fast: undefined, full: { 'cache-control': 'max-age=3600' } }

await t.test('redis: every corrupted field of a stored value is a miss answered by the origin, deleted, counted and logged', async (t) => {
  const redis = await startRedis(t)
  const raw = redis.client()
  const origin = await countingOrigin(t)
  const keyPrefix = 'sd:'
  const gw = await withGateway(t, { config: { routes: [{ origin: origin.url }], redis: { url: redis.url, keyPrefix } } })
  let n = 0
  for (const c of CORRUPTIONS) {
    for (const [way, headers] of Object.entries(PATHS)) {
      await t.test(`${c.name}, ${way} path`, async (t) => {
        const path = `/item-${++n}`
        await gw.get(path)
        await gw.settled()
        const key = gw.outcomes.at(-1)?.url as CacheKey
        const entryKey = urlKeys(keyPrefix, key).entry(NO_VARY)
        const good = await raw.getBuffer(entryKey)
        if (good === null) throw new Error('the first answer was not stored')
        const bad = c.corrupt(good)
        await raw.set(entryKey, bad, 'KEEPTTL')
        const metricBefore = await invalidCount(gw, c.problem)
        const reported = invalidReported(gw, key)
        const before = origin.count()

        fromOrigin(t, await gw.get(path, headers), path, origin, before)
        t.match(await reported, { problem: c.problem, store: 'redis', deleted: true })
        await gw.settled()
        const now = await raw.getBuffer(entryKey)
        t.not(now?.equals(bad), true, 'the refused value is gone from Redis')
        t.equal(await invalidCount(gw, c.problem), metricBefore + 1, `cachegate_store_invalid_entries_total{reason="${c.problem}"} counted it`)
        t.equal(logLinesFor(gw, key).length, 1, 'one log line names the key')

        const again = await gw.get(path)
        t.equal(again.body, `${path} #${origin.count()}`, 'the origin\'s answer is stored and served again')
        t.equal(origin.count(), before + 1, 'as a hit')
      })
    }
  }
  t.equal((await gw.get('/item-1')).status, 200, 'the gateway still serves')
})

await t.test('redis: a key found invalid again is counted again but logged once', async (t) => {
  const redis = await startRedis(t)
  const raw = redis.client()
  const origin = await countingOrigin(t)
  const keyPrefix = 'once:'
  const gw = await withGateway(t, { config: { routes: [{ origin: origin.url }], redis: { url: redis.url, keyPrefix } } })
  const corrupt = CORRUPTIONS.find((c) => c.problem === 'header-value')
  if (corrupt === undefined) throw new Error('no header-value case')
  let key: CacheKey | undefined
  for (let i = 0; i < 3; i++) {
    await gw.get('/again')
    await gw.settled()
    key = gw.outcomes.at(-1)?.url as CacheKey
    const entryKey = urlKeys(keyPrefix, key).entry(NO_VARY)
    const good = await raw.getBuffer(entryKey)
    if (good === null) throw new Error('not stored')
    await raw.set(entryKey, corrupt.corrupt(good), 'KEEPTTL')
    const reported = invalidReported(gw, key)
    t.equal((await gw.get('/again')).status, 200)
    await reported
  }
  t.equal(await invalidCount(gw, 'header-value'), 3, 'counted each time')
  t.equal(logLinesFor(gw, key as CacheKey).length, 1, 'logged once')
})

/** Memory store corruptions: only code can damage an object held in memory, so code does it here. */
const MEMORY_CORRUPTIONS: { name: string, problem: string, corrupt: (store: MemoryStore, key: CacheKey, entry: CacheEntry) => Promise<void> }[] = [
  {
    name: 'body bytes changed in place (same length)',
    problem: 'checksum',
    corrupt: async (_store, _key, entry) => { entry.body.writeUInt8(entry.body.readUInt8(0) ^ 0x20, 0) }
  },
  {
    name: 'header value with CR LF',
    problem: 'header-value',
    corrupt: async (store, key, entry) => { await store.put(key, NO_VARY, { ...entry, headers: { ...entry.headers, 'x-evil': 'a\r\nset-cookie: session=attacker' } }, { ttlMs: 60_000, maxVariants: 8 }) }
  },
  {
    name: 'header value with NUL',
    problem: 'header-value',
    corrupt: async (store, key, entry) => { await store.put(key, NO_VARY, { ...entry, headers: { ...entry.headers, 'x-evil': 'a\u0000b' } }, { ttlMs: 60_000, maxVariants: 8 }) }
  },
  {
    name: 'header name invalid',
    problem: 'header-name',
    corrupt: async (store, key, entry) => { await store.put(key, NO_VARY, { ...entry, headers: { ...entry.headers, 'x evil': '1' } }, { ttlMs: 60_000, maxVariants: 8 }) }
  },
  {
    name: 'status out of range',
    problem: 'status',
    corrupt: async (store, key, entry) => { await store.put(key, NO_VARY, { ...entry, status: 1000 }, { ttlMs: 60_000, maxVariants: 8 }) }
  },
  {
    name: 'a field of the wrong type',
    problem: 'field',
    corrupt: async (store, key, entry) => { await store.put(key, NO_VARY, { ...entry, freshness: Number.NaN }, { ttlMs: 60_000, maxVariants: 8 }) }
  }
]

await t.test('memory: a corrupted stored object is a miss answered by the origin, deleted, counted and logged', async (t) => {
  const origin = await countingOrigin(t)
  const clock = new ManualClock()
  const store = new MemoryStore({ maxBytes: 16 * 1024 * 1024, clock })
  const gw = await withGateway(t, { clock, store, config: { routes: [{ origin: origin.url }] } })
  let n = 0
  for (const c of MEMORY_CORRUPTIONS) {
    for (const [way, headers] of Object.entries(PATHS)) {
      await t.test(`${c.name}, ${way} path`, async (t) => {
        const path = `/item-${++n}`
        await gw.get(path)
        await gw.settled()
        const key = gw.outcomes.at(-1)?.url as CacheKey
        const entry = (await store.lookup(key)).entry
        if (entry === null) throw new Error('the first answer was not stored')
        await c.corrupt(store, key, entry)
        const metricBefore = await invalidCount(gw, c.problem)
        const reported = invalidReported(gw, key)
        const before = origin.count()

        fromOrigin(t, await gw.get(path, headers), path, origin, before)
        t.match(await reported, { problem: c.problem, store: 'memory', deleted: true })
        await gw.settled()
        t.equal(await invalidCount(gw, c.problem), metricBefore + 1, 'counted')
        t.equal(logLinesFor(gw, key).length, 1, 'one log line names the key')
        const again = await gw.get(path)
        t.equal(again.body, `${path} #${origin.count()}`, 'the origin\'s answer replaced it')
        t.equal(origin.count(), before + 1, 'and is served as a hit')
      })
    }
  }
})

/**
 * A store that skips the read check (as a third-party store might): it hands out its entries
 * with a field Node refuses to write. Only the fast path's own guard stands between that
 * entry and a crash.
 */
class UncheckedStore implements Store {
  readonly kind
  readonly #inner: MemoryStore
  readonly #sync: boolean
  constructor (inner: MemoryStore, sync: boolean) {
    this.#inner = inner
    this.#sync = sync
    this.kind = sync ? 'memory' as const : 'tiered' as const
    if (sync) this.peek = (url) => this.#inner.peek(url) === undefined ? undefined : this.#forge(this.#inner.peek(url))
  }

  peek?: (url: CacheKey) => CacheEntry | undefined
  #forge (entry: CacheEntry | undefined): CacheEntry | undefined {
    return entry === undefined ? undefined : { ...entry, headers: { ...entry.headers, 'x-evil': 'a\r\nset-cookie: session=attacker' } }
  }

  async lookup (url: CacheKey): Promise<StoreLookup> {
    const found = await this.#inner.lookup(url)
    return { vary: found.vary, entry: this.#sync ? found.entry : this.#forge(found.entry ?? undefined) ?? null }
  }

  async getVariant (url: CacheKey, variant: VariantId): Promise<CacheEntry | null> { return await this.#inner.getVariant(url, variant) }
  async put (url: CacheKey, variant: VariantId, entry: CacheEntry, options: PutOptions): Promise<void> { await this.#inner.put(url, variant, entry, options) }
  async deleteVariant (url: CacheKey, variant: VariantId): Promise<void> { await this.#inner.deleteVariant(url, variant) }
  async deleteUrl (url: CacheKey): Promise<number> { return await this.#inner.deleteUrl(url) }
  async markStale (url: CacheKey, at: number): Promise<number> { return await this.#inner.markStale(url, at) }
  async urlsForTag (tag: string): Promise<CacheKey[]> { return await this.#inner.urlsForTag(tag) }
  async urlsForPrefix (o: string, prefix: string): Promise<CacheKey[]> { return await this.#inner.urlsForPrefix(o, prefix) }
  async origins (): Promise<string[]> { return await this.#inner.origins() }
  async close (): Promise<void> { await this.#inner.close() }
}

for (const sync of [true, false]) {
  const where = sync ? 'a synchronous read (memory, L1)' : 'a lookup\'s promise callback (shared store)'
  await t.test(`the fast path answers from the origin when writing a stored entry throws in ${where}`, async (t) => {
    const origin = await countingOrigin(t)
    const clock = new ManualClock()
    const gw = await withGateway(t, { clock, store: new UncheckedStore(new MemoryStore({ maxBytes: 1 << 24, clock }), sync), config: { routes: [{ origin: origin.url }] } })
    await gw.get('/forged')
    await gw.settled()
    const before = origin.count()
    fromOrigin(t, await gw.get('/forged'), '/forged', origin, before)
    const errors = gw.logLines.map((l) => JSON.parse(l) as { msg?: string, err?: { code?: string } }).filter((l) => l.msg === 'fast path failed: the request went the full way as a miss')
    t.equal(errors.length, 1, 'the failure is logged')
    t.equal(errors[0]?.err?.code, 'ERR_INVALID_CHAR', 'it was Node refusing the field')
    t.equal((await gw.get('/other')).status, 200, 'the gateway keeps serving')
  })
}
