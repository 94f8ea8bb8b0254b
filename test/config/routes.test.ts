import t from 'tap'
import { compileRoutes, normalizeRequestHost, pathMatches } from '../../src/config/routes.ts'
import type { RouteConfig } from '../../src/config/types.ts'

function route (name: string, host: string | undefined, path: string): RouteConfig {
  return {
    name,
    host,
    path,
    origin: 'http://127.0.0.1:3000',
    enabled: true,
    defaultTtl: undefined,
    maxTtl: undefined,
    key: { ignoreQuery: [], headers: [], cookies: [] },
    staleWhileRevalidate: 0,
    staleIfError: 0,
    keep: 0,
    downstreamCacheControl: undefined,
    keepTagHeaders: false,
    storeContentTypes: [],
    timeouts: { connect: 5000, headers: 30_000, body: 30_000 },
    maxConnections: 128,
    l1: false,
    ttlJitter: 0,
    refreshAhead: false,
    storePostResponses: true,
    implicitCachingWithCookies: false,
    ignoreClientNoCache: false,
    languageSelection: true
  }
}

t.test('a path prefix matches on segment boundaries only', async (t) => {
  const table: Array<[string, string, boolean]> = [
    ['/api', '/api', true],
    ['/api', '/api/', true],
    ['/api', '/api/x', true],
    ['/api', '/api?q=1', true],
    ['/api', '/api#f', true],
    ['/api', '/apix', false],
    ['/api', '/ap', false],
    ['/api', '/API', false],
    ['/api', '/', false],
    ['/api/', '/api/x', true],
    ['/api/', '/api/', true],
    ['/api/', '/api', false],
    ['/api/', '/apix', false],
    ['/', '/', true],
    ['/', '/anything/at/all?x', true],
    ['/', '*', false],
    ['/a/b', '/a/b/c', true],
    ['/a/b', '/a/bc', false]
  ]
  for (const [prefix, path, matches] of table) {
    t.equal(pathMatches(prefix, path), matches, `${prefix} ${matches ? 'matches' : 'does not match'} ${path}`)
  }
})

t.test('a request host is compared lower-case, without port or trailing dot', async (t) => {
  const table: Array<[string, string]> = [
    ['api.example.com', 'api.example.com'],
    ['API.Example.COM', 'api.example.com'],
    ['api.example.com:8080', 'api.example.com'],
    ['api.example.com.', 'api.example.com'],
    ['api.example.com.:443', 'api.example.com'],
    ['[::1]:8080', '[::1]'],
    ['[::1]', '[::1]'],
    ['[FE80::1]:80', '[fe80::1]'],
    ['127.0.0.1:3000', '127.0.0.1'],
    ['', '']
  ]
  for (const [header, host] of table) t.equal(normalizeRequestHost(header), host, `${JSON.stringify(header)} is ${host}`)
})

t.test('the first matching route in file order wins', async (t) => {
  const matcher = compileRoutes([
    route('shop-api', 'shop.example.com', '/api'),
    route('api-v1', undefined, '/api/v1'),
    route('api', undefined, '/api'),
    route('shop', 'shop.example.com', '/'),
    route('ipv6', '[::1]', '/'),
    route('static', undefined, '/static/'),
    route('fallback', undefined, '/')
  ])
  const table: Array<[string | undefined, string, string | undefined]> = [
    ['shop.example.com', '/api/cart', 'shop-api'],
    ['SHOP.example.com:8443', '/api', 'shop-api'],
    ['shop.example.com.', '/api?x=1', 'shop-api'],
    ['shop.example.com', '/api/v1/items', 'shop-api'],
    ['shop.example.com', '/apix', 'shop'],
    ['shop.example.com', '/', 'shop'],
    ['other.example.com', '/api/v1/items', 'api-v1'],
    ['other.example.com', '/api/v10', 'api'],
    ['other.example.com', '/api', 'api'],
    [undefined, '/api/v1', 'api-v1'],
    ['', '/api', 'api'],
    ['[::1]:8080', '/anything', 'ipv6'],
    ['[::1]', '/api', 'api'],
    ['localhost', '/static/app.js', 'static'],
    ['localhost', '/static', 'fallback'],
    ['localhost', '/', 'fallback']
  ]
  for (const [host, path, name] of table) {
    t.equal(matcher.match(host, path)?.name, name, `${String(host)} ${path} -> ${String(name)}`)
  }
})

t.test('no route matches when nothing covers the request', async (t) => {
  const matcher = compileRoutes([route('shop', 'shop.example.com', '/'), route('api', undefined, '/api')])
  t.equal(matcher.match('other.example.com', '/'), undefined)
  t.equal(matcher.match(undefined, '/apix'), undefined)
  t.equal(matcher.match('shop.example.com', '/x')?.name, 'shop')
  t.equal(compileRoutes([]).match('a', '/'), undefined, 'an empty table matches nothing')
})

t.test('route hosts are normalized when compiled, whoever built the routes', async (t) => {
  const matcher = compileRoutes([route('upper', 'API.Example.com.', '/'), route('v6', '::1', '/')])
  t.equal(matcher.match('api.example.com', '/')?.name, 'upper')
  t.equal(matcher.match('[::1]:80', '/')?.name, 'v6')
})
