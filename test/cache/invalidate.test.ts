import t from 'tap'
import type { IncomingHeaders } from '../../src/cache/headers.ts'
import { invalidationTargets, isUnsafe } from '../../src/cache/invalidate.ts'
import { globMatcher, type CacheKey } from '../../src/cache/key.ts'

const target = 'https://example.com/items/1' as CacheKey

t.test('isUnsafe follows RFC 9110 §9.2.1', async (t) => {
  for (const m of ['GET', 'HEAD', 'OPTIONS', 'TRACE']) t.equal(isUnsafe(m), false, `§9.2.1 ${m} is safe`)
  for (const m of ['POST', 'PUT', 'DELETE', 'PATCH', 'PURGE', 'get']) t.equal(isUnsafe(m), true, `§9.2.1 ${m} is not known safe`)
})

t.test('invalidationTargets follows RFC 9111 §4.4', async (t) => {
  const rows: Array<{ name: string, method: string, status: number, headers?: IncomingHeaders, key?: CacheKey, ignore?: (name: string) => boolean, expected: string[] }> = [
    { name: '§4.4 POST 200 invalidates the target', method: 'POST', status: 200, expected: [target] },
    { name: '§4.4 PUT 204 invalidates the target', method: 'PUT', status: 204, expected: [target] },
    { name: '§4.4 DELETE 202 invalidates the target', method: 'DELETE', status: 202, expected: [target] },
    { name: '§4.4 PATCH 200 invalidates the target', method: 'PATCH', status: 200, expected: [target] },
    { name: '§4.4 a 3xx is a non-error status too', method: 'POST', status: 303, headers: { location: '/items/2' }, expected: [target, 'https://example.com/items/2'] },
    { name: '§4.4 a 4xx invalidates nothing', method: 'POST', status: 404, expected: [] },
    { name: '§4.4 a 5xx invalidates nothing', method: 'DELETE', status: 500, expected: [] },
    { name: '§4.4 a 1xx invalidates nothing', method: 'POST', status: 100, expected: [] },
    { name: '§4.4 GET invalidates nothing', method: 'GET', status: 200, headers: { location: '/items/2' }, expected: [] },
    { name: '§4.4 HEAD invalidates nothing', method: 'HEAD', status: 200, expected: [] },
    { name: '§4.4 a same-origin absolute Location is invalidated', method: 'POST', status: 201, headers: { location: 'https://example.com/items/2' }, expected: [target, 'https://example.com/items/2'] },
    { name: '§4.4 a relative Location is resolved against the target', method: 'POST', status: 201, headers: { location: '2' }, expected: [target, 'https://example.com/items/2'] },
    { name: '§4.4 a root-relative Location with dot segments is normalized', method: 'POST', status: 201, headers: { location: '/a/../items/3?b=1&a=2' }, expected: [target, 'https://example.com/items/3?a=2&b=1'] },
    { name: '§4.4 Content-Location is invalidated too', method: 'PUT', status: 200, headers: { 'content-location': '/items/1.json' }, expected: [target, 'https://example.com/items/1.json'] },
    { name: '§4.4 Location and Content-Location together', method: 'POST', status: 201, headers: { location: '/a', 'content-location': '/b' }, expected: [target, 'https://example.com/a', 'https://example.com/b'] },
    { name: '§4.4 a Location equal to the target is listed once', method: 'PUT', status: 200, headers: { location: '/items/1' }, expected: [target] },
    { name: '§4.4 a Location with an explicit default port is the same origin', method: 'POST', status: 201, headers: { location: 'https://EXAMPLE.com:443/x' }, expected: [target, 'https://example.com/x'] },
    { name: '§4.4 a cross-origin Location is not invalidated (other host)', method: 'POST', status: 201, headers: { location: 'https://evil.example/items/1' }, expected: [target] },
    { name: '§4.4 a cross-origin Location is not invalidated (other scheme)', method: 'POST', status: 201, headers: { location: 'http://example.com/items/1' }, expected: [target] },
    { name: '§4.4 a cross-origin Location is not invalidated (other port)', method: 'POST', status: 201, headers: { location: 'https://example.com:8443/items/1' }, expected: [target] },
    { name: '§4.4 a scheme-relative cross-origin Location is not invalidated', method: 'POST', status: 201, headers: { 'content-location': '//evil.example/x' }, expected: [target] },
    { name: '§4.4 an unparseable Location is skipped', method: 'POST', status: 201, headers: { location: 'http://[bad' }, expected: [target] },
    { name: '§4.4 a Location with an invalid escape is skipped', method: 'POST', status: 201, headers: { location: '/a%zz' }, expected: [target] },
    { name: '§4.4 ignored query params leave Location keys as they leave request keys', method: 'POST', status: 201, headers: { location: '/x?utm_source=a&id=1' }, ignore: globMatcher(['utm_*']), expected: [target, 'https://example.com/x?id=1'] },
    { name: 'a key WHATWG URL refuses still invalidates itself (cache/ does not throw)', method: 'POST', status: 200, key: 'http://a%zz/x' as CacheKey, headers: { location: '/y' }, expected: ['http://a%zz/x'] }
  ]
  for (const row of rows) {
    t.same(invalidationTargets(row.method, row.status, row.key ?? target, row.headers ?? {}, row.ignore), row.expected, row.name)
  }
})
