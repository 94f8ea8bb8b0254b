// When a POST response may be kept as the GET response of its URL (RFC 9110 §9.3.3), one row
// per rule, with the attacker's cases: a Content-Location naming another resource, implicit
// freshness, credentials, and everything a GET response must also meet.
import t from 'tap'
import { parseCacheControl } from '../../src/cache/cache-control.ts'
import type { IncomingHeaders } from '../../src/cache/headers.ts'
import type { CacheKey } from '../../src/cache/key.ts'
import { postAsGet, preparePost, type PostPolicy } from '../../src/cache/post-as-get.ts'

const T = Date.UTC(2026, 0, 1)
const S = 1000
const url = 'https://shop.example/search?a=1&b=2' as CacheKey
const DATE = new Date(T).toUTCString()
const IN_AN_HOUR = new Date(T + 3600 * S).toUTCString()

const policy = (p: Partial<PostPolicy> = {}): PostPolicy => ({
  storeContentTypes: [],
  defaultTtl: undefined,
  maxTtl: undefined,
  staleWhileRevalidate: 0,
  staleIfError: 0,
  key: { cookies: [], ignoreQuery: [] },
  implicitCachingWithCookies: false,
  ...p
})

interface Row {
  name: string
  status?: number
  request?: IncomingHeaders
  response: IncomingHeaders
  policy?: Partial<PostPolicy>
  /** true, or the refusal detail. */
  expected: true | string
}

function verdict (row: Row): true | string {
  const request = row.request ?? {}
  const r = preparePost({
    url,
    method: 'POST',
    requestHeaders: request,
    request: parseCacheControl(request['cache-control']),
    status: row.status ?? 200,
    headers: row.response,
    requestTime: T,
    responseTime: T
  }, policy(row.policy))
  return r.storable ? true : r.detail
}

const self = { 'content-location': '/search?b=2&a=1' }
const fresh = { 'cache-control': 'max-age=60', ...self }

t.test('preparePost follows RFC 9110 §9.3.3 and, for the rest, RFC 9111 §3', async (t) => {
  const rows: Row[] = [
    // The suite's case (method-POST): Expires and Date, no Cache-Control.
    { name: '§9.3.3 explicit freshness (Expires) and Content-Location naming the target: stored', response: { expires: IN_AN_HOUR, date: DATE, ...self }, expected: true },
    { name: '§9.3.3 max-age counts as explicit freshness', response: fresh, expected: true },
    { name: '§9.3.3 s-maxage counts as explicit freshness', response: { 'cache-control': 's-maxage=60', ...self }, expected: true },
    { name: 'RFC 9213 a targeted max-age counts as explicit freshness', response: { 'cdn-cache-control': 'max-age=60', ...self }, expected: true },
    { name: '§15.3.4 a 203 carries a representation of the target too', status: 203, response: fresh, expected: true },
    { name: 'a 201 is about the created resource, not the target', status: 201, response: fresh, expected: 'post-status' },
    { name: 'a 204 has no body to answer a GET with', status: 204, response: fresh, expected: 'post-status' },
    { name: 'a 303 points elsewhere', status: 303, response: { ...fresh, location: '/search?a=1&b=2' }, expected: 'post-status' },
    { name: 'a 500 is never stored', status: 500, response: fresh, expected: 'post-status' },
    { name: '§9.3.3 no explicit freshness: not stored, however cacheable the status', response: { 'last-modified': 'Thu, 01 Jan 2025 00:00:00 GMT', ...self }, expected: 'post-freshness' },
    { name: '§9.3.3 public alone is not explicit freshness', response: { 'cache-control': 'public', ...self }, expected: 'post-freshness' },
    { name: '§9.3.3 never the route defaultTtl in place of the origin\'s freshness', response: self, policy: { defaultTtl: 600 * S }, expected: 'post-freshness' },
    { name: 'a targeted field hides Cache-Control and Expires: a targeted no-cache gives no freshness', response: { 'cdn-cache-control': 'no-cache', expires: IN_AN_HOUR, date: DATE, ...self }, expected: 'post-freshness' },
    { name: '§9.3.3 no Content-Location: not stored', response: { 'cache-control': 'max-age=60' }, expected: 'content-location' },
    { name: '§9.3.3 a Content-Location naming another path is not stored', response: { ...fresh, 'content-location': '/admin' }, expected: 'content-location' },
    { name: '§9.3.3 a Content-Location with another query is not stored', response: { ...fresh, 'content-location': '/search?a=1' }, expected: 'content-location' },
    { name: '§9.3.3 a Content-Location on another host is not stored', response: { ...fresh, 'content-location': 'https://evil.example/search?a=1&b=2' }, expected: 'content-location' },
    { name: '§9.3.3 a scheme-relative Content-Location on another host is not stored', response: { ...fresh, 'content-location': '//evil.example/search?a=1&b=2' }, expected: 'content-location' },
    { name: '§9.3.3 a backslash that WHATWG URL reads as // is another host too', response: { ...fresh, 'content-location': '/\\evil.example/search?a=1&b=2' }, expected: 'content-location' },
    { name: '§9.3.3 the same path over another scheme is another origin', response: { ...fresh, 'content-location': 'http://shop.example/search?a=1&b=2' }, expected: 'content-location' },
    { name: '§9.3.3 the same path on another port is another origin', response: { ...fresh, 'content-location': 'https://shop.example:8443/search?a=1&b=2' }, expected: 'content-location' },
    { name: 'an unparseable Content-Location is not stored', response: { ...fresh, 'content-location': 'http://[bad' }, expected: 'content-location' },
    { name: 'a Content-Location with an invalid escape is not stored', response: { ...fresh, 'content-location': '/search%zz' }, expected: 'content-location' },
    { name: 'two Content-Location field lines name no single resource', response: { ...fresh, 'content-location': ['/search?a=1&b=2', '/search?a=1&b=2'] }, expected: 'content-location' },
    { name: 'the target spelled absolutely, host in capitals, default port: the same key', response: { ...fresh, 'content-location': 'https://SHOP.example:443/x/../search?b=2&a=1' }, expected: true },
    { name: 'an ignored query parameter leaves Content-Location\'s key as it leaves the request\'s', response: { ...fresh, 'content-location': '/search?a=1&utm_source=x&b=2' }, policy: { key: { cookies: [], ignoreQuery: ['utm_*'] } }, expected: true },
    { name: 'deliberately, Authorization with only max-age is not stored (§3.5)', request: { authorization: 'Bearer x' }, response: fresh, expected: 'authorization' },
    { name: '§3.5 Authorization with public is stored', request: { authorization: 'Bearer x' }, response: { ...fresh, 'cache-control': 'public, max-age=60' }, expected: true },
    { name: 'deliberately, a cookie the route does not key on with only max-age is not stored', request: { cookie: 'session=abc' }, response: fresh, expected: 'cookie' },
    { name: 'a cookie the route does not key on with s-maxage is stored (§3.5 permission)', request: { cookie: 'session=abc' }, response: { ...self, 'cache-control': 's-maxage=60' }, expected: true },
    { name: 'a cookie the route keys on is no credential', request: { cookie: 'lang=fr' }, response: fresh, policy: { key: { cookies: ['lang'], ignoreQuery: [] } }, expected: true },
    { name: 'a keyed cookie beside an unkeyed one is still a credential', request: { cookie: 'lang=fr; session=alice' }, response: fresh, policy: { key: { cookies: ['lang'], ignoreQuery: [] } }, expected: 'cookie' },
    { name: 'deliberately, implicitCachingWithCookies does not share a POST with a session cookie and only max-age', request: { cookie: 'session=alice' }, response: fresh, policy: { implicitCachingWithCookies: true }, expected: 'cookie' },
    { name: 'implicitCachingWithCookies: a session cookie with public is stored (§3.5 permission)', request: { cookie: 'session=alice' }, response: { ...fresh, 'cache-control': 'public, max-age=60' }, policy: { implicitCachingWithCookies: true }, expected: true },
    { name: 'implicitCachingWithCookies: Authorization with only max-age is still not stored', request: { authorization: 'Bearer x' }, response: fresh, policy: { implicitCachingWithCookies: true }, expected: 'authorization' },
    { name: '§3 response private is not stored', response: { ...fresh, 'cache-control': 'private, max-age=60' }, expected: 'private' },
    { name: '§3 response no-store is not stored', response: { ...fresh, 'cache-control': 'no-store, max-age=60' }, expected: 'no-store' },
    { name: '§3 request no-store is not stored', request: { 'cache-control': 'no-store' }, response: fresh, expected: 'request-no-store' },
    { name: 'deliberately, Set-Cookie is never stored', response: { ...fresh, 'cache-control': 'public, max-age=60', 'set-cookie': ['sid=1'] }, expected: 'set-cookie' },
    { name: '§4.1 Vary: * is not stored', response: { ...fresh, vary: '*' }, expected: 'vary-star' },
    { name: 'the route\'s content types apply', response: { ...fresh, 'content-type': 'text/html' }, policy: { storeContentTypes: ['application/json'] }, expected: 'content-type' },
    { name: '§4.2.1 an invalid max-age is not stored', response: { ...fresh, 'cache-control': 'max-age=soon' }, expected: 'invalid-freshness' },
    { name: 'an Expires in the past is stale on arrival', response: { ...self, expires: 'Thu, 01 Jan 2020 00:00:00 GMT', date: DATE }, expected: 'stale-on-arrival' }
  ]
  for (const row of rows) t.equal(verdict(row), row.expected, row.name)
})

t.test('a kept POST response has the origin\'s freshness and stale windows only, never the route\'s', async (t) => {
  const answer = {
    url,
    method: 'POST',
    requestHeaders: {},
    request: parseCacheControl(undefined),
    status: 200,
    headers: { 'cache-control': 'max-age=60', ...self },
    requestTime: T,
    responseTime: T
  }
  const routeWindows = policy({ defaultTtl: 600 * S, staleWhileRevalidate: 300 * S, staleIfError: 900 * S, maxTtl: 30 * S })
  const r = preparePost(answer, routeWindows)
  if (!r.storable) throw new Error(r.detail)
  t.equal(r.meta.freshness, 30 * S, 'the route\'s maxTtl still caps it')
  t.equal(r.meta.staleWhileRevalidate, 0, 'no route stale-while-revalidate')
  t.equal(r.meta.staleIfError, 0, 'no route stale-if-error')
  t.equal(r.freshness.source, 'max-age')

  const own = preparePost({ ...answer, headers: { 'cache-control': 'max-age=60, stale-while-revalidate=5', ...self } }, routeWindows)
  if (!own.storable) throw new Error(own.detail)
  t.equal(own.meta.staleWhileRevalidate, 5 * S, 'the origin\'s own window counts')
  t.equal(own.meta.headers['content-location'], '/search?b=2&a=1', 'stored as received')
})

t.test('postAsGet decides before anything is captured, from status and headers alone', async (t) => {
  t.same(postAsGet(200, fresh, url, policy()), { storable: true })
  t.same(postAsGet(200, { 'cache-control': 'max-age=60' }, url, policy()), { storable: false, detail: 'content-location' })
  t.same(postAsGet(200, fresh, 'http://a%zz/x' as CacheKey, policy()), { storable: false, detail: 'content-location' }, 'a key WHATWG URL refuses matches nothing (cache/ does not throw)')
})
