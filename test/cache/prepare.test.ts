import t from 'tap'
import { parseCacheControl } from '../../src/cache/cache-control.ts'
import { merge304Headers } from '../../src/cache/conditional.ts'
import type { IncomingHeaders } from '../../src/cache/headers.ts'
import type { CacheKey } from '../../src/cache/key.ts'
import { prepareEntry, type EntryPolicy, type OriginAnswer, type Prepared } from '../../src/cache/prepare.ts'

const T = Date.UTC(2026, 0, 1)
const S = 1000
const url = 'http://h/p' as CacheKey

const policy = (p: Partial<EntryPolicy> = {}): EntryPolicy => ({
  storeContentTypes: [],
  defaultTtl: undefined,
  maxTtl: undefined,
  staleWhileRevalidate: 0,
  staleIfError: 0,
  key: { cookies: [] },
  implicitCachingWithCookies: false,
  ...p
})

function prepare (headers: IncomingHeaders, over: Partial<OriginAnswer> = {}, p: Partial<EntryPolicy> = {}): Prepared {
  return prepareEntry({
    url,
    method: 'GET',
    requestHeaders: {},
    request: parseCacheControl(undefined),
    status: 200,
    headers,
    requestTime: T,
    responseTime: T,
    ...over
  }, policy(p))
}

function stored (headers: IncomingHeaders, over: Partial<OriginAnswer> = {}, p: Partial<EntryPolicy> = {}): Extract<Prepared, { storable: true }> {
  const r = prepare(headers, over, p)
  if (!r.storable) throw new Error(`expected storable, got ${r.detail}`)
  return r
}

t.test('prepareEntry builds entry metadata for a storable response', async (t) => {
  const r = stored({
    'cache-control': 'max-age=60, stale-while-revalidate=30, stale-if-error=300',
    'content-type': 'application/json',
    etag: '"v1"',
    age: '5',
    connection: 'keep-alive, X-Hop',
    'keep-alive': 'timeout=5',
    'x-hop': '1',
    'transfer-encoding': 'chunked',
    'surrogate-key': 'product-1 list',
    'cache-tag': 'list, category-2',
    vary: 'Accept-Encoding, Origin'
  }, { requestTime: T - 2 * S })
  t.same(r.meta, {
    url,
    status: 200,
    headers: {
      'cache-control': 'max-age=60, stale-while-revalidate=30, stale-if-error=300',
      'content-type': 'application/json',
      etag: '"v1"',
      'surrogate-key': 'product-1 list',
      'cache-tag': 'list, category-2',
      vary: 'Accept-Encoding, Origin'
    },
    requestTime: T - 2 * S,
    responseTime: T,
    initialAge: 7 * S,
    freshness: 60 * S,
    staleWhileRevalidate: 30 * S,
    staleIfError: 300 * S,
    tags: ['product-1', 'list', 'category-2'],
    mustRevalidate: false,
    noCache: false,
    invalidatedAt: 0
  }, 'headers without hop-by-hop, Connection-listed fields and Age; §4.2.3 initial age; tags from both fields')
  t.same(r.varyNames, ['accept-encoding', 'origin'], 'Vary names, lower-case and sorted')
  t.equal(r.freshness.source, 'max-age')
  t.equal(r.ttlMs, 53 * S + 300 * S, 'retention: freshness left after the initial age, plus the longer stale window')
})

t.test('prepareEntry sets mustRevalidate and noCache from the response directives (RFC 9111 §5.2.2)', async (t) => {
  const rows: Array<{ name: string, cc: string, mustRevalidate?: boolean, noCache?: boolean }> = [
    { name: '§5.2.2.2 must-revalidate', cc: 'max-age=60, must-revalidate', mustRevalidate: true },
    { name: '§5.2.2.8 proxy-revalidate applies to a shared cache', cc: 'max-age=60, proxy-revalidate', mustRevalidate: true },
    { name: '§5.2.2.10 s-maxage implies proxy-revalidate', cc: 's-maxage=60', mustRevalidate: true },
    { name: '§5.2.2.10 deliberately, s-maxage with stale-while-revalidate does not imply proxy-revalidate', cc: 's-maxage=60, stale-while-revalidate=30', mustRevalidate: false },
    { name: '§5.2.2.10 deliberately, s-maxage with stale-if-error does not imply proxy-revalidate', cc: 's-maxage=60, stale-if-error=30', mustRevalidate: false },
    { name: '§5.2.2.2 an explicit must-revalidate wins over RFC 5861 directives', cc: 's-maxage=60, stale-while-revalidate=30, must-revalidate', mustRevalidate: true },
    { name: '§5.2.2.1 max-age alone allows stale use', cc: 'max-age=60', mustRevalidate: false, noCache: false },
    { name: '§5.2.2.4 unqualified no-cache forces validation', cc: 'max-age=60, no-cache', noCache: true },
    { name: '§5.2.2.4 qualified no-cache does not force validation of the whole response', cc: 'max-age=60, no-cache="x-user"', noCache: false }
  ]
  for (const row of rows) {
    const r = stored({ 'cache-control': row.cc })
    if (row.mustRevalidate !== undefined) t.equal(r.meta.mustRevalidate, row.mustRevalidate, `${row.name} (mustRevalidate)`)
    if (row.noCache !== undefined) t.equal(r.meta.noCache, row.noCache, `${row.name} (noCache)`)
  }
})

t.test('prepareEntry does not store the fields a qualified no-cache names (RFC 9111 §5.2.2.4)', async (t) => {
  const r = stored({ 'cache-control': 'max-age=60, no-cache="X-User, x-Secret"', 'x-user': 'alice', 'x-secret': 's', 'x-public': 'p' })
  t.same(Object.keys(r.meta.headers).sort(), ['cache-control', 'x-public'])
})

t.test('prepareEntry refuses with the reason', async (t) => {
  const rows: Array<{ name: string, headers: IncomingHeaders, over?: Partial<OriginAnswer>, policy?: Partial<EntryPolicy>, detail: string }> = [
    { name: '§3 no-store', headers: { 'cache-control': 'no-store' }, detail: 'no-store' },
    { name: '§3 private', headers: { 'cache-control': 'private, max-age=60' }, detail: 'private' },
    { name: 'Set-Cookie', headers: { 'cache-control': 'max-age=60', 'set-cookie': 'a=1' }, detail: 'set-cookie' },
    { name: '§4.1 Vary: *', headers: { 'cache-control': 'max-age=60', vary: '*' }, detail: 'vary-star' },
    { name: '§3 a POST', headers: { 'cache-control': 'max-age=60' }, over: { method: 'POST' }, detail: 'method' },
    { name: '§4.2 stale on arrival: max-age=0 without stale windows', headers: { 'cache-control': 'max-age=0' }, detail: 'stale-on-arrival' },
    { name: '§4.2.3 stale on arrival: the Age header spends the whole lifetime', headers: { 'cache-control': 'max-age=60', age: '60' }, detail: 'stale-on-arrival' },
    { name: '§4.2.3 stale on arrival: an old Date spends the whole lifetime', headers: { 'cache-control': 'max-age=60', date: new Date(T - 120 * S).toUTCString() }, detail: 'stale-on-arrival' },
    { name: '§4.2.2 stale on arrival: a heuristically cacheable 200 without any freshness', headers: {}, detail: 'stale-on-arrival' },
    { name: '§5.3 stale on arrival: an invalid Expires', headers: { expires: '0' }, detail: 'stale-on-arrival' }
  ]
  for (const row of rows) {
    const r = prepare(row.headers, row.over, row.policy)
    t.same(r, { storable: false, detail: row.detail }, row.name)
  }
})

t.test('prepareEntry keeps a stale-on-arrival response when a stale window remains', async (t) => {
  const r = stored({ 'cache-control': 'max-age=0, stale-while-revalidate=30' })
  t.equal(r.meta.freshness, 0)
  t.equal(r.ttlMs, 30 * S)
  t.same(prepare({}, {}, { staleIfError: 60 * S, staleWhileRevalidate: 30 * S }), { storable: false, detail: 'stale-on-arrival' },
    'the route\'s windows do not keep a response that was never fresh')
})

t.test('only the origin\'s explicit permission shares a response (safe by default)', async (t) => {
  const route = { staleWhileRevalidate: 30 * S, staleIfError: 300 * S }
  const cookie = { requestHeaders: { cookie: 'session=abc' } }
  interface Case { name: string, headers: IncomingHeaders, over?: Partial<OriginAnswer>, p?: Partial<EntryPolicy>, expected: string | { freshness: number, swr: number, sie: number } }
  const cases: Case[] = [
    { name: 'positive explicit freshness gets the route windows', headers: { 'cache-control': 'max-age=60' }, p: route, expected: { freshness: 60 * S, swr: 30 * S, sie: 300 * S } },
    { name: 'max-age=0 does not get the route windows', headers: { 'cache-control': 'max-age=0' }, p: route, expected: 'stale-on-arrival' },
    { name: 'no Cache-Control does not get the route windows', headers: {}, p: route, expected: 'stale-on-arrival' },
    { name: 'a response already older than its lifetime does not get the route windows', headers: { 'cache-control': 'max-age=60', age: '120' }, p: route, expected: 'stale-on-arrival' },
    { name: 'no-cache forbids the route windows', headers: { 'cache-control': 'max-age=60, no-cache' }, p: route, expected: { freshness: 60 * S, swr: 0, sie: 0 } },
    { name: 'must-revalidate forbids the route windows', headers: { 'cache-control': 'max-age=60, must-revalidate' }, p: route, expected: { freshness: 60 * S, swr: 0, sie: 0 } },
    { name: 'proxy-revalidate forbids the route windows', headers: { 'cache-control': 'max-age=60, proxy-revalidate' }, p: route, expected: { freshness: 60 * S, swr: 0, sie: 0 } },
    { name: 'the origin\'s own windows apply to max-age=0', headers: { 'cache-control': 'max-age=0, stale-while-revalidate=10, stale-if-error=20' }, p: route, expected: { freshness: 0, swr: 10 * S, sie: 20 * S } },
    { name: 'a default TTL gives positive freshness, and the route windows, without credentials', headers: {}, p: { ...route, defaultTtl: 60 * S }, expected: { freshness: 60 * S, swr: 30 * S, sie: 300 * S } },
    { name: 'a request with a session cookie gets no default TTL', headers: {}, over: cookie, p: { ...route, defaultTtl: 60 * S }, expected: 'cookie' },
    { name: 'a request with a session cookie gets no heuristic freshness', headers: { date: 'Thu, 01 Jan 2026 00:00:00 GMT', 'last-modified': 'Mon, 01 Dec 2025 00:00:00 GMT' }, over: cookie, p: route, expected: 'cookie' },
    { name: 'a request with a session cookie and explicit freshness is shared, without the route windows', headers: { 'cache-control': 'max-age=60' }, over: cookie, p: route, expected: { freshness: 60 * S, swr: 0, sie: 0 } },
    { name: 'a request whose cookies are all keyed gets the default TTL', headers: {}, over: { requestHeaders: { cookie: 'currency=EUR' } }, p: { ...route, defaultTtl: 60 * S, key: { cookies: ['currency'] } }, expected: { freshness: 60 * S, swr: 30 * S, sie: 300 * S } },
    { name: 'a keyed cookie beside a session cookie gets no default TTL', headers: {}, over: { requestHeaders: { cookie: 'currency=EUR; session=abc' } }, p: { ...route, defaultTtl: 60 * S, key: { cookies: ['currency'] } }, expected: 'cookie' },
    { name: 'the route opt-out lets cookie requests get the default TTL', headers: {}, over: cookie, p: { ...route, defaultTtl: 60 * S, implicitCachingWithCookies: true }, expected: { freshness: 60 * S, swr: 30 * S, sie: 300 * S } },
    { name: 'Authorization with s-maxage is shared without the route windows (s-maxage implies proxy-revalidate)', headers: { 'cache-control': 's-maxage=60' }, over: { requestHeaders: { authorization: 'Bearer x' } }, p: route, expected: { freshness: 60 * S, swr: 0, sie: 0 } },
    { name: 'Authorization with public, max-age gets no route windows', headers: { 'cache-control': 'public, max-age=60' }, over: { requestHeaders: { authorization: 'Bearer x' } }, p: { ...route, implicitCachingWithCookies: true }, expected: { freshness: 60 * S, swr: 0, sie: 0 } }
  ]
  for (const c of cases) {
    const r = prepare(c.headers, c.over, c.p)
    const got = r.storable ? { freshness: r.meta.freshness, swr: r.meta.staleWhileRevalidate, sie: r.meta.staleIfError } : r.detail
    t.same(got, c.expected, c.name)
  }
})

t.test('prepareEntry applies route defaults and caps', async (t) => {
  const r = stored({ 'content-type': 'text/html' }, {}, { defaultTtl: 120 * S, maxTtl: 60 * S })
  t.equal(r.meta.freshness, 60 * S)
  t.equal(r.freshness.source, 'default-ttl')
  t.same(prepare({ 'cache-control': 'max-age=60', 'content-type': 'text/html' }, {}, { storeContentTypes: ['application/json'] }), { storable: false, detail: 'content-type' })
})

t.test('prepareEntry reads a targeted field instead of Cache-Control (RFC 9213)', async (t) => {
  const r = stored({ 'cdn-cache-control': 'max-age=600', 'cache-control': 'no-store' })
  t.equal(r.meta.freshness, 600 * S)
  t.same(prepare({ 'cachegate-cache-control': 'no-store', 'cache-control': 'max-age=60' }), { storable: false, detail: 'no-store' })
})

t.test('a 304 without Date freshens the entry instead of making it stale on arrival (RFC 9111 §4.3.4, §4.2.3)', async (t) => {
  const first = stored({ 'cache-control': 'max-age=60', date: new Date(T).toUTCString(), etag: '"v1"' })
  const later = T + 120 * S
  for (const [name, receivedAt] of [['with the receive time', later], ['without it', undefined]] as const) {
    const merged = merge304Headers(first.meta.headers, { etag: '"v1"', 'cache-control': 'max-age=60' }, receivedAt)
    const again = stored(merged, { requestTime: later, responseTime: later })
    t.equal(again.meta.initialAge, 0, `${name}: the original Date does not count as age`)
    t.equal(again.meta.freshness, 60 * S, `${name}: fresh again for max-age`)
  }
})
