/**
 * The purge engine without HTTP: body validation (table-driven), resolution of each selector
 * to stored URLs, retries of failed store calls, announcements and revalidation targets.
 */
import t from 'tap'
import type { CacheKey } from '../../src/cache/key.ts'
import { ManualClock } from '../../src/clock.ts'
import { parseConfig } from '../../src/config/load.ts'
import { compileRoutes } from '../../src/config/routes.ts'
import type { RouteConfig } from '../../src/config/types.ts'
import { LocalBus } from '../../src/coordination/bus.ts'
import { announceInvalidations, BULK_PURGE_URLS, parsePurgeRequest, Purger, purgeCounts, type PurgeRequest, type PurgeTarget } from '../../src/invalidation/purge.ts'
import { addressAllowed } from '../../src/http/admin-purge.ts'
import { MemoryStore } from '../../src/store/memory.ts'
import type { Store } from '../../src/store/store.ts'
import { key, makeEntry, PUT, variant } from '../store/contract.ts'

const config = parseConfig(JSON.stringify({
  routes: [
    { origin: 'http://127.0.0.1:9', host: 'off.example', enabled: false },
    { origin: 'http://127.0.0.1:9', key: { ignoreQuery: ['utm_*'] } }
  ]
}), 'test.yaml', {})
const routes = compileRoutes(config.routes)

const REQ: PurgeRequest = { urls: [], prefixes: [], tags: [], hosts: [], all: false, mode: 'hard' }

t.test('valid bodies', async (t) => {
  const rows: Array<[unknown, Partial<PurgeRequest>]> = [
    [{ tags: ['a', 'B'] }, { tags: ['a', 'B'] }],
    [{ urls: ['https://x.example/a?b=1'] }, { urls: ['https://x.example/a?b=1'] }],
    [{ hosts: ['X.Example:8080'] }, { hosts: ['x.example:8080'] }],
    [{ hosts: ['[::1]:8080'] }, { hosts: ['[::1]:8080'] }],
    [{ all: true, mode: 'soft' }, { all: true, mode: 'soft' }],
    [{ tags: ['a'], soft: true }, { mode: 'soft' }],
    [{ tags: ['a'], soft: false }, { mode: 'hard' }],
    [{ tags: ['a'], soft: true, mode: 'soft' }, { mode: 'soft' }],
    [{ tags: ['a'], mode: 'revalidate' }, { mode: 'revalidate' }],
    [{ tags: [] }, { tags: [] }],
    [{ tags: ['\u00e9'.repeat(512)] }, {}]
  ]
  for (const [body, expected] of rows) {
    const parsed = parsePurgeRequest(body)
    t.ok(parsed.ok, JSON.stringify(body).slice(0, 60))
    if (parsed.ok) t.match(parsed.value, { ...REQ, ...expected })
  }
})

t.test('invalid bodies name the field', async (t) => {
  const rows: Array<[unknown, string]> = [
    [null, 'body'],
    ['tags', 'body'],
    [{ all: false }, 'body'],
    [{ tags: ['\u00e9'.repeat(513)] }, 'tags[0]'],
    [{ urls: [42] }, 'urls[0]'],
    [{ urls: ['https://x.example/%zz'] }, 'urls[0]'],
    [{ prefixes: ['x.example/a'] }, 'prefixes[0]'],
    [{ hosts: ['-x.example'] }, 'hosts[0]'],
    [{ hosts: ['x.example/a'] }, 'hosts[0]'],
    [{ hosts: Array.from({ length: 257 }, () => 'x.example') }, 'hosts'],
    [{ tags: ['a'], mode: 'soft', soft: false }, 'soft'],
    [{ tags: ['a'], mode: 'revalidate', soft: true }, 'soft'],
    [{ tags: ['a'], extra: 1 }, 'extra']
  ]
  for (const [body, field] of rows) {
    const parsed = parsePurgeRequest(body)
    t.match(parsed, { ok: false, field, message: new RegExp(`^${field.replace(/[[\]]/g, '\\$&')}: `) }, JSON.stringify(body).slice(0, 60))
  }
})

function setup (overrides: { deleteFailures?: number } = {}): { store: MemoryStore, purger: Purger, announced: CacheKey[][], refreshed: string[], clock: ManualClock, background: Array<Promise<unknown>> } {
  const clock = new ManualClock()
  const store = new MemoryStore({ maxBytes: 10_000_000, clock })
  let failures = overrides.deleteFailures ?? 0
  const flaky: Store = {
    kind: 'memory',
    lookup: async (url) => await store.lookup(url),
    getVariant: async (url, v) => await store.getVariant(url, v),
    put: async (url, v, entry, options) => await store.put(url, v, entry, options),
    deleteVariant: async (url, v) => await store.deleteVariant(url, v),
    deleteUrl: async (url) => {
      if (failures > 0) {
        failures--
        throw new Error('Command timed out')
      }
      return await store.deleteUrl(url)
    },
    markStale: async (url, at) => await store.markStale(url, at),
    urlsForTag: async (tag) => await store.urlsForTag(tag),
    urlsForPrefix: async (origin, prefix) => await store.urlsForPrefix(origin, prefix),
    origins: async () => await store.origins(),
    close: async () => await store.close()
  }
  const announced: CacheKey[][] = []
  const refreshed: string[] = []
  const background: Array<Promise<unknown>> = []
  const purger = new Purger({
    store: flaky,
    clock,
    routes: () => routes,
    announce: async (urls) => { announced.push([...urls]) },
    refresh: async (route: RouteConfig, k: CacheKey, path: string) => { refreshed.push(`${route.name} ${k} ${path}`) },
    background: (_name, fn) => { background.push(fn()) },
    retryDelaysMs: [0, 0]
  })
  return { store, purger, announced, refreshed, clock, background }
}

async function put (store: MemoryStore, url: string, tags: string[] = []): Promise<void> {
  await store.put(key(url), variant(''), makeEntry(url, { tags }), PUT)
}

t.test('a URL is keyed as a request would be, under both schemes (TLS is often terminated in front)', async (t) => {
  const { store, purger, announced } = setup()
  await put(store, 'http://shop.example/p?a=1&b=2')
  await put(store, 'https://shop.example/p?a=1&b=2')
  await put(store, 'http://shop.example/p?a=1&b=3')
  const res = await purger.purge({ ...REQ, urls: ['https://SHOP.example:443/p?b=2&utm_x=1&a=1'] })
  t.match(res, { purged: 2, marked: 0, mode: 'hard' })
  t.strictSame(announced, [['https://shop.example/p?a=1&b=2', 'http://shop.example/p?a=1&b=2']])
  t.not((await store.lookup(key('http://shop.example/p?a=1&b=3'))).entry, null)
})

t.test('hosts: host:port names one authority, a bare name every port of it', async (t) => {
  const { store, purger } = setup()
  for (const url of ['http://a.example/1', 'https://a.example/2', 'http://a.example:8080/3', 'http://b.example/4', 'http://aa.example/5']) await put(store, url)
  t.match(await purger.purge({ ...REQ, hosts: ['a.example:8080'] }), { purged: 1 })
  t.match(await purger.purge({ ...REQ, hosts: ['a.example'] }), { purged: 2 })
  t.strictSame(await store.origins(), ['http://aa.example', 'http://b.example'])
})

t.test('a prefix matches from the start of the normalized URL, on one host', async (t) => {
  const { store, purger } = setup()
  for (const url of ['http://a.example/p/1', 'http://a.example/p/2?x=1', 'http://a.example/q/p/1', 'http://b.example/p/1']) await put(store, url)
  t.match(await purger.purge({ ...REQ, prefixes: ['http://A.example/x/../p/'] }), { purged: 2 })
  t.strictSame(await store.urlsForPrefix('http://a.example', ''), ['http://a.example/q/p/1'])
})

t.test('selectors overlap: each URL is purged once', async (t) => {
  const { store, purger } = setup()
  await put(store, 'http://a.example/p/1', ['t'])
  const res = await purger.purge({ ...REQ, tags: ['t'], urls: ['http://a.example/p/1'], prefixes: ['http://a.example/'], hosts: ['a.example'], all: true })
  t.match(res, { purged: 1 })
})

t.test('a store call that fails is retried; one that keeps failing fails the purge', async (t) => {
  const once = setup({ deleteFailures: 2 })
  await put(once.store, 'http://a.example/1')
  t.match(await once.purger.purge({ ...REQ, urls: ['http://a.example/1'] }), { purged: 1 }, 'two failures, then success')
  const always = setup({ deleteFailures: Infinity })
  await put(always.store, 'http://a.example/1')
  await t.rejects(always.purger.purge({ ...REQ, urls: ['http://a.example/1'] }), /timed out/)
})

t.test('revalidate refreshes only URLs that had an entry, on routes that cache', async (t) => {
  const { store, purger, refreshed, background } = setup()
  await put(store, 'http://a.example/p?a=1', ['t'])
  await put(store, 'http://off.example/p', ['t'])
  const res = await purger.purge({ ...REQ, tags: ['t'], urls: ['http://a.example/never-stored'], mode: 'revalidate' })
  t.match(res, { marked: 2, purged: 0, mode: 'revalidate' })
  await Promise.all(background)
  t.strictSame(refreshed, ['route-1 http://a.example/p?a=1 /p?a=1'])
  t.equal((await store.lookup(key('http://off.example/p'))).entry?.invalidatedAt, new ManualClock().now(), 'marked stale all the same')
})

t.test('metrics: one purge per kind named, its entries counted once', async (t) => {
  t.strictSame(purgeCounts({ kinds: ['url', 'tag'], purged: 3, marked: 1, mode: 'hard', durationMs: 1, urls: 4 }), [['url', 4], ['tag', 0]])
  t.strictSame(purgeCounts({ kinds: ['method'], purged: 1, marked: 0, mode: 'hard', durationMs: 1, urls: 1 }), [['url', 1]])
})

t.test('announcements: one message per URL, or one "*" above BULK_PURGE_URLS', async (t) => {
  const bus = new LocalBus()
  const seen: string[] = []
  await bus.subscribe('cg:inval', (m) => seen.push(m))
  await announceInvalidations(bus, 'cg:inval', [key('http://a.example/1'), key('http://a.example/2')])
  t.strictSame(seen, ['http://a.example/1', 'http://a.example/2'])
  seen.splice(0)
  await announceInvalidations(bus, 'cg:inval', Array.from({ length: BULK_PURGE_URLS + 1 }, (_, i) => key(`http://a.example/${i}`)))
  t.strictSame(seen, ['*'])
})

t.test('a purge of more than BULK_PURGE_URLS URLs goes through the bulk hook when there is one', async (t) => {
  const clock = new ManualClock()
  const store = new MemoryStore({ maxBytes: 100_000_000, clock })
  for (let i = 0; i <= BULK_PURGE_URLS; i++) await put(store, `http://a.example/${i}`, ['many'])
  await put(store, 'http://a.example/few', ['few'])
  const bulks: number[] = []
  const purger = new Purger({
    store,
    clock,
    routes: () => routes,
    refresh: async () => undefined,
    background: () => undefined,
    bulk: async (apply) => {
      let calls = 0
      const target: PurgeTarget = { deleteUrl: async (u) => { calls++; return await store.deleteUrl(u) }, markStale: async (u, at) => await store.markStale(u, at) }
      await apply(target)
      bulks.push(calls)
    }
  })
  t.match(await purger.purge({ ...REQ, tags: ['few'] }), { purged: 1 })
  t.strictSame(bulks, [], 'a small purge goes through the store')
  t.match(await purger.purge({ ...REQ, tags: ['many'] }), { purged: BULK_PURGE_URLS + 1 })
  t.strictSame(bulks, [BULK_PURGE_URLS + 1], 'a large one through the bulk hook')
})

t.test('PURGE method allow list: exact addresses, IPv4-mapped IPv6 counts as IPv4', async (t) => {
  const rows: Array<[string[], string, boolean]> = [
    [['127.0.0.1', '::1'], '127.0.0.1', true],
    [['127.0.0.1', '::1'], '::ffff:127.0.0.1', true],
    [['127.0.0.1', '::1'], '::1', true],
    [['127.0.0.1', '::1'], '0:0:0:0:0:0:0:1', true],
    [['127.0.0.1', '::1'], '127.0.0.2', false],
    [['10.0.0.1'], '10.0.0.10', false],
    [[], '127.0.0.1', false],
    [['127.0.0.1'], 'not an address', false]
  ]
  for (const [allow, ip, expected] of rows) t.equal(addressAllowed(allow, ip), expected, `${ip} in [${allow.join(', ')}]`)
})
