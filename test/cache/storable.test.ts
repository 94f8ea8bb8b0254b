import t from 'tap'
import { effectiveResponseDirectives, parseCacheControl } from '../../src/cache/cache-control.ts'
import type { IncomingHeaders } from '../../src/cache/headers.ts'
import { HEURISTIC_STATUSES, storability, type StorePolicy } from '../../src/cache/storable.ts'

interface Row {
  name: string
  method?: string
  request?: IncomingHeaders
  status?: number
  response?: IncomingHeaders
  policy?: Partial<StorePolicy>
  /** true, or the refusal detail. */
  expected: true | string
}

function verdict (row: Row): true | string {
  const request = row.request ?? {}
  const response = row.response ?? {}
  const { directives, targeted } = effectiveResponseDirectives(response)
  const v = storability(
    row.method ?? 'GET',
    request,
    parseCacheControl(request['cache-control']),
    row.status ?? 200,
    response,
    directives,
    targeted,
    { storeContentTypes: [], defaultTtl: undefined, key: { cookies: [] }, implicitCachingWithCookies: false, ...row.policy }
  )
  return v.storable ? true : v.detail
}

t.test('storability follows RFC 9111 §3 for a shared cache', async (t) => {
  const rows: Row[] = [
    { name: '§5.2.2.3 must-understand with a status this cache does not understand is not stored', status: 599, response: { 'cache-control': 'max-age=3600, must-understand' }, expected: 'must-understand' },
    { name: '§5.2.2.3 must-understand with an understood status ignores no-store', response: { 'cache-control': 'max-age=3600, must-understand, no-store' }, expected: true },
    { name: '§5.2.2.3 must-understand does not lift private', response: { 'cache-control': 'max-age=3600, must-understand, no-store, private' }, expected: 'private' },
    { name: '§3 a 200 with max-age is storable', response: { 'cache-control': 'max-age=60' }, expected: true },
    { name: '§3 a heuristically cacheable 200 without freshness is storable', expected: true },
    { name: '§3 the request method must be understood and cacheable (POST)', method: 'POST', response: { 'cache-control': 'max-age=60' }, expected: 'method' },
    { name: '§3 deliberately, HEAD responses are not stored (no body to serve a GET)', method: 'HEAD', response: { 'cache-control': 'max-age=60' }, expected: 'method' },
    { name: '§3 a 1xx status is not final', status: 101, response: { 'cache-control': 'max-age=60' }, expected: 'status' },
    { name: '§3 deliberately, 206 is not stored (no range assembly)', status: 206, response: { 'cache-control': 'max-age=60' }, expected: 'partial-content' },
    { name: '§3 a 304 is not stored (it updates a stored response, §4.3.4)', status: 304, response: { 'cache-control': 'max-age=60' }, expected: 'status' },
    { name: '§3 / §5.2.1.5 request no-store', request: { 'cache-control': 'no-store' }, response: { 'cache-control': 'max-age=60' }, expected: 'request-no-store' },
    { name: '§3 / §5.2.2.5 response no-store', response: { 'cache-control': 'max-age=60, no-store' }, expected: 'no-store' },
    { name: '§3 / §5.2.2.7 a shared cache does not store private', response: { 'cache-control': 'private, max-age=60' }, expected: 'private' },
    { name: '§5.2.2.7 deliberately, qualified private refuses the whole response', response: { 'cache-control': 'private="x-user", max-age=60' }, expected: 'private' },
    { name: '§3.5 Authorization without permission is not stored', request: { authorization: 'Bearer x' }, response: { 'cache-control': 'max-age=60' }, expected: 'authorization' },
    { name: '§3.5 Authorization with public is stored', request: { authorization: 'Bearer x' }, response: { 'cache-control': 'public, max-age=60' }, expected: true },
    { name: '§3.5 Authorization with s-maxage is stored', request: { authorization: 'Bearer x' }, response: { 'cache-control': 's-maxage=60' }, expected: true },
    { name: '§3.5 Authorization with must-revalidate is stored', request: { authorization: 'Bearer x' }, response: { 'cache-control': 'must-revalidate, max-age=60' }, expected: true },
    { name: '§3.5 Authorization with only Expires is not stored', request: { authorization: 'Bearer x' }, response: { expires: 'Thu, 01 Jan 2099 00:00:00 GMT' }, expected: 'authorization' },
    { name: '§3.5 an empty Authorization still counts', request: { authorization: '' }, response: { 'cache-control': 'max-age=60' }, expected: 'authorization' },
    { name: 'deliberately, Set-Cookie is never stored (one user\'s session)', response: { 'cache-control': 'public, max-age=60', 'set-cookie': ['a=1'] }, expected: 'set-cookie' },
    { name: '§4.1 Vary: * never matches, so it is not stored', response: { 'cache-control': 'max-age=60', vary: 'Accept, *' }, expected: 'vary-star' },
    { name: '§3 a non-heuristic status without explicit freshness is not stored (302)', status: 302, expected: 'status-not-cacheable' },
    { name: '§3 a non-heuristic status without explicit freshness is not stored (500)', status: 500, expected: 'status-not-cacheable' },
    { name: '§3 a 500 with max-age is storable', status: 500, response: { 'cache-control': 'max-age=60' }, expected: true },
    { name: '§3 a 302 with Expires is storable', status: 302, response: { expires: 'Thu, 01 Jan 2099 00:00:00 GMT' }, expected: true },
    { name: '§3 a 302 with s-maxage is storable', status: 302, response: { 'cache-control': 's-maxage=5' }, expected: true },
    { name: '§3 a 503 with public is storable', status: 503, response: { 'cache-control': 'public' }, expected: true },
    { name: '§3 an invalid Expires still counts as explicit (it means already expired, §5.3)', status: 302, response: { expires: '0' }, expected: true },
    { name: '§4.2.1 an invalid max-age refuses', response: { 'cache-control': 'max-age=soon' }, expected: 'invalid-freshness' },
    { name: '§4.2.1 an invalid s-maxage refuses even with a valid max-age', response: { 'cache-control': 's-maxage=x, max-age=60' }, expected: 'invalid-freshness' },
    { name: '§4.2.1 a valid s-maxage makes an invalid max-age irrelevant', response: { 'cache-control': 's-maxage=60, max-age=x' }, expected: true },
    { name: 'the content-type guard refuses types the route does not expect', response: { 'cache-control': 'max-age=60', 'content-type': 'text/html' }, policy: { storeContentTypes: ['application/json'] }, expected: 'content-type' },
    { name: 'the content-type guard accepts a listed prefix with parameters, any case', response: { 'cache-control': 'max-age=60', 'content-type': 'Application/JSON; charset=utf-8' }, policy: { storeContentTypes: ['application/json'] }, expected: true },
    { name: 'the content-type guard refuses a missing Content-Type', response: { 'cache-control': 'max-age=60' }, policy: { storeContentTypes: ['image/'] }, expected: 'content-type' },
    { name: 'RFC 9213 §2.2 a targeted field makes Expires irrelevant', status: 302, response: { 'cdn-cache-control': 'must-revalidate', expires: 'Thu, 01 Jan 2099 00:00:00 GMT' }, expected: 'status-not-cacheable' },
    { name: 'RFC 9213 §2.2 targeted max-age makes a 302 storable despite Cache-Control: no-store', status: 302, response: { 'cdn-cache-control': 'max-age=60', 'cache-control': 'no-store' }, expected: true },
    { name: 'RFC 9213 §2.2 targeted no-store refuses despite Cache-Control max-age', response: { 'cachegate-cache-control': 'no-store', 'cache-control': 'max-age=60' }, expected: 'no-store' },
    { name: '§3 request no-store is checked before response freshness', request: { 'cache-control': 'no-store' }, status: 500, expected: 'request-no-store' }
  ]
  for (const row of rows) t.equal(verdict(row), row.expected, row.name)
})

t.test('every heuristically cacheable status of RFC 9110 §15.1 is storable without freshness', async (t) => {
  t.same([...HEURISTIC_STATUSES].sort((a, b) => a - b), [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501], '206 is handled apart')
  for (const status of HEURISTIC_STATUSES) t.equal(verdict({ name: '', status, expected: true }), true, `§4.2.2 status ${status}`)
  for (const status of [201, 202, 302, 303, 307, 400, 401, 403, 500, 502, 503, 504]) {
    t.equal(verdict({ name: '', status, expected: true }), 'status-not-cacheable', `§3 status ${status} needs explicit freshness`)
  }
})
