/* eslint-disable no-template-curly-in-string -- these tests are about literal ${VAR} references in YAML text */
import { fileURLToPath } from 'node:url'
import t from 'tap'
import type { Test } from 'tap'
import { ConfigError, expandString, loadConfig, parseConfig } from '../../src/config/load.ts'
import type { Env } from '../../src/config/load.ts'
import type { GatewayConfig, RouteConfig } from '../../src/config/types.ts'

const fixture = (name: string): string => fileURLToPath(new URL(`fixtures/${name}`, import.meta.url))
const yaml = (...lines: string[]): string => lines.join('\n') + '\n'

/** The problems parseConfig reports, or a failed assertion if it accepts the text. */
function problemsOf (t: Test, text: string, env: Env = {}): string[] {
  try {
    parseConfig(text, 'routes.yaml', env)
  } catch (error) {
    if (error instanceof ConfigError) return error.problems
    throw error
  }
  t.fail('the configuration was accepted')
  return []
}

function route (text: string, env: Env = {}): RouteConfig {
  const config = parseConfig(text, 'routes.yaml', env)
  const first = config.routes[0]
  if (first === undefined) throw new Error('no route')
  return first
}

const defaultRoute: RouteConfig = {
  name: 'route-0',
  host: undefined,
  path: '/',
  origin: 'http://127.0.0.1:3000',
  enabled: true,
  defaultTtl: undefined,
  maxTtl: undefined,
  key: { ignoreQuery: [], headers: [], cookies: [] },
  staleWhileRevalidate: 0,
  staleIfError: 0,
  keep: 3_600_000,
  downstreamCacheControl: undefined,
  keepTagHeaders: false,
  storeContentTypes: [],
  storePostResponses: true,
  timeouts: { connect: 5000, headers: 30_000, body: 30_000 },
  maxConnections: 128,
  l1: false,
  ttlJitter: 0,
  refreshAhead: false,
  implicitCachingWithCookies: false,
  ignoreClientNoCache: false,
  languageSelection: true
}

t.test('a file with only one origin gets every default', async (t) => {
  const file = fixture('minimal.yaml')
  const expected: GatewayConfig = {
    file,
    listen: { host: '0.0.0.0', port: 8080 },
    admin: { host: '127.0.0.1', port: 9091, token: undefined, webhookSecret: undefined, webhookTolerance: 300_000 },
    redis: undefined,
    cache: {
      memoryMaxBytes: 256 * 2 ** 20,
      maxObjectSize: 8 * 2 ** 20,
      maxVariants: 32,
      l1MaxBytes: 32 * 2 ** 20,
      l1MaxTtl: 5000,
      coalesceWait: 5000,
      hitForMiss: 10_000
    },
    limits: { maxUrlLength: 8192, maxHeaderBytes: 16 * 1024, maxBodyBytes: 10 * 2 ** 20, requestBodyTimeout: 10_000 },
    purgeMethod: { enabled: false, allow: ['127.0.0.1', '::1'] },
    shutdownTimeout: 10_000,
    trustedProxies: [],
    stripHeaders: [],
    redactQueryParams: ['token', 'access_token', 'api_key', 'apikey', 'key', 'signature', 'sig', 'password', 'secret', 'auth'],
    routes: [defaultRoute]
  }
  t.strictSame(await loadConfig(file, {}), expected)
})

t.test('a file setting every key gets exactly those values, normalized', async (t) => {
  const file = fixture('full.yaml')
  const expected: GatewayConfig = {
    file,
    listen: { host: '127.0.0.2', port: 8081 },
    admin: { host: '0.0.0.0', port: 9092, token: 's3cret', webhookSecret: 'hook', webhookTolerance: 300_000 },
    redis: { url: 'redis://redis.internal:6380/2', cluster: [], keyPrefix: 'app:', commandTimeout: 75, writeTimeout: 1000, breaker: { failures: 3, cooldown: 10_000 } },
    cache: {
      memoryMaxBytes: 2 ** 30,
      maxObjectSize: 1_000_000,
      maxVariants: 4,
      l1MaxBytes: 64 * 1024,
      l1MaxTtl: 2000,
      coalesceWait: 0,
      hitForMiss: 60_000
    },
    limits: { maxUrlLength: 2048, maxHeaderBytes: 8000, maxBodyBytes: 1_048_576, requestBodyTimeout: 10_000 },
    purgeMethod: { enabled: true, allow: ['10.0.0.1', 'fd00::1'] },
    shutdownTimeout: 90_000,
    trustedProxies: ['10.0.0.0/8', '192.0.2.7', 'fd00::/8'],
    stripHeaders: ['x-debug-user', 'x-internal'],
    redactQueryParams: ['session', 'x-amz-*'],
    routes: [
      {
        name: 'catalog',
        host: 'api.example.com',
        path: '/v1',
        origin: 'https://catalog.internal:8443/base',
        enabled: false,
        defaultTtl: 60_000,
        maxTtl: 86_400_000,
        key: { ignoreQuery: ['utm_*', 'fbclid'], headers: ['x-tenant'], cookies: ['currency'] },
        staleWhileRevalidate: 30_000,
        staleIfError: 300_000,
        keep: 600_000,
        downstreamCacheControl: 'public, max-age=60',
        keepTagHeaders: true,
        storeContentTypes: ['application/json', 'text/'],
        storePostResponses: false,
        timeouts: { connect: 2000, headers: 10_000, body: 60_000, total: 300_000 },
        maxConnections: 16,
        l1: true,
        ttlJitter: 12.5,
        refreshAhead: true,
        implicitCachingWithCookies: false,
        ignoreClientNoCache: false,
        languageSelection: false
      },
      { ...defaultRoute, name: 'route-1' }
    ]
  }
  t.strictSame(await loadConfig(file, {}), expected)
})

t.test('durations and sizes are accepted in every documented form', async (t) => {
  const durations: Array<[string, number]> = [
    ['0', 0], ['90', 90_000], ['1.5', 1500], ['"45"', 45_000], ['500ms', 500], ['10s', 10_000],
    ['5m', 300_000], ['2h', 7_200_000], ['1d', 86_400_000], ['1h30m', 5_400_000]
  ]
  for (const [written, ms] of durations) {
    t.equal(route(yaml('routes:', '  - origin: http://a', `    maxTtl: ${written}`)).maxTtl, ms, `maxTtl: ${written} is ${ms} ms`)
  }
  const sizes: Array<[string, number]> = [
    ['0', 0], ['512', 512], ['"512"', 512], ['16KiB', 16_384], ['8MiB', 8_388_608], ['1GiB', 1_073_741_824],
    ['10kb', 10_000], ['8mb', 8_000_000], ['1gb', 1_000_000_000], ['8MB', 8_000_000], ['16kib', 16_384]
  ]
  for (const [written, bytes] of sizes) {
    const config = parseConfig(yaml(`cache: { maxObjectSize: ${written} }`, 'routes: [{ origin: "http://a" }]'), 'routes.yaml', {})
    t.equal(config.cache.maxObjectSize, bytes, `maxObjectSize: ${written} is ${bytes} bytes`)
  }
})

t.test('numbers and booleans may be written as strings, as ${VAR} expansion produces', async (t) => {
  const config = parseConfig(yaml(
    'listen: { port: "${PORT}" }',
    'routes:',
    '  - origin: http://a',
    '    enabled: "${ENABLED}"',
    '    maxConnections: "8"',
    '    ttlJitter: "7.5"'
  ), 'routes.yaml', { PORT: '3000', ENABLED: 'false' })
  t.equal(config.listen.port, 3000)
  t.equal(config.routes[0]?.enabled, false)
  t.equal(config.routes[0]?.maxConnections, 8)
  t.equal(config.routes[0]?.ttlJitter, 7.5)
})

t.test('each bad value is reported as file:line:col: path: problem', async (t) => {
  const table: Array<[string, string, string]> = [
    ['a duration that is not one', yaml('routes:', '  - origin: http://a', '    maxTtl: ten'),
      'routes.yaml:3:13: routes[0].maxTtl: expected a duration such as "10m", got "ten"'],
    ['a negative duration', yaml('routes:', '  - origin: http://a', '    staleIfError: -5'),
      'routes.yaml:3:19: routes[0].staleIfError: expected a duration such as "10m", got -5'],
    ['an empty value', yaml('routes:', '  - origin: http://a', '    defaultTtl:'),
      'routes.yaml:3:16: routes[0].defaultTtl: expected a duration such as "10m", got an empty value'],
    ['a zero timeout', yaml('routes:', '  - origin: http://a', '    timeouts: { connect: 0s }'),
      'routes.yaml:3:26: routes[0].timeouts.connect: expected a duration from 1ms to 24d such as "5s", got "0s"'],
    ['a timeout longer than a timer can wait', yaml('shutdownTimeout: 30d', 'routes: [{ origin: "http://a" }]'),
      'routes.yaml:1:18: shutdownTimeout: expected a duration from 1ms to 24d such as "5s", got "30d"'],
    ['a size that is not one', yaml('cache:', '  maxObjectSize: 8 furlongs', 'routes: [{ origin: "http://a" }]'),
      'routes.yaml:2:18: cache.maxObjectSize: expected a size such as "8MiB", got "8 furlongs"'],
    ['a zero request limit', yaml('limits: { maxBodyBytes: 0 }', 'routes: [{ origin: "http://a" }]'),
      'routes.yaml:1:25: limits.maxBodyBytes: expected a size of at least 1 byte such as "16KiB", got 0'],
    ['a port out of range', yaml('listen:', '  port: 70000', 'routes: [{ origin: "http://a" }]'),
      'routes.yaml:2:9: listen.port: expected a port number 0-65535, got 70000'],
    ['a port that is not a number', yaml('admin: { port: http }', 'routes: [{ origin: "http://a" }]'),
      'routes.yaml:1:16: admin.port: expected a port number 0-65535, got "http"'],
    ['a fractional port', yaml('admin: { port: 80.5 }', 'routes: [{ origin: "http://a" }]'),
      'routes.yaml:1:16: admin.port: expected a port number 0-65535, got 80.5'],
    ['a zero count', yaml('cache: { maxVariants: 0 }', 'routes: [{ origin: "http://a" }]'),
      'routes.yaml:1:23: cache.maxVariants: expected a whole number of at least 1, got 0'],
    ['a jitter above 50 percent', yaml('routes:', '  - origin: http://a', '    ttlJitter: 51'),
      'routes.yaml:3:16: routes[0].ttlJitter: expected a percentage from 0 to 50, got 51'],
    ['a YAML 1.1 boolean', yaml('routes:', '  - origin: http://a', '    l1: yes'),
      'routes.yaml:3:9: routes[0].l1: expected true or false, got "yes"'],
    ['a non-http origin', yaml('routes:', '  - origin: ftp://x'),
      'routes.yaml:2:13: routes[0].origin: expected an http(s) URL, got "ftp://x"'],
    ['an origin that is no URL', yaml('routes:', '  - origin: localhost:3000'),
      'routes.yaml:2:13: routes[0].origin: expected an http(s) URL, got "localhost:3000"'],
    ['an origin with a query', yaml('routes:', '  - origin: http://x/?a=1'),
      'routes.yaml:2:13: routes[0].origin: expected an http(s) URL without query or fragment, got "http://x/?a=1"'],
    ['an origin with credentials, masked', yaml('routes:', '  - origin: http://me:pw@x'),
      'routes.yaml:2:13: routes[0].origin: expected an http(s) URL without credentials, got "http://me:***@x"'],
    ['a path without leading slash', yaml('routes:', '  - origin: http://a', '    path: api'),
      'routes.yaml:3:11: routes[0].path: expected a path starting with "/" without query or fragment, got "api"'],
    ['a host with a port', yaml('routes:', '  - origin: http://a', '    host: api.example.com:8080'),
      'routes.yaml:3:11: routes[0].host: expected a host name without port such as "api.example.com", got "api.example.com:8080"'],
    ['a wildcard host', yaml('routes:', '  - origin: http://a', '    host: "*"'),
      'routes.yaml:3:11: routes[0].host: expected a host name (leave host out to match every host), got "*"'],
    ['a route name with spaces', yaml('routes:', '  - origin: http://a', '    name: my route'),
      'routes.yaml:3:11: routes[0].name: expected a name of letters, digits, "_" and "-", got "my route"'],
    ['a header name with a space', yaml('routes:', '  - origin: http://a', '    key: { headers: ["x tenant"] }'),
      'routes.yaml:3:22: routes[0].key.headers[0]: expected a header name such as "x-tenant", got "x tenant"'],
    ['a header list written as a string', yaml('routes:', '  - origin: http://a', '    key: { headers: x-tenant }'),
      'routes.yaml:3:21: routes[0].key.headers: expected a list of header names, got "x-tenant"'],
    ['a Cache-Control with a line break', yaml('routes:', '  - origin: http://a', '    downstreamCacheControl: "public\\r\\nx: y"'),
      'routes.yaml:3:29: routes[0].downstreamCacheControl: expected a header value such as "public, max-age=60", got "public\\r\\nx: y"'],
    ['a purge allow entry that is no address', yaml('purgeMethod: { allow: [localhost] }', 'routes: [{ origin: "http://a" }]'),
      'routes.yaml:1:24: purgeMethod.allow[0]: expected an IP address such as "127.0.0.1", got "localhost"'],
    ['a redis URL of another scheme', yaml('redis: { url: "http://:pw@r:6379" }', 'routes: [{ origin: "http://a" }]'),
      'routes.yaml:1:15: redis.url: expected a redis:// or rediss:// URL, got "http://:***@r:6379"'],
    ['a cluster seed without port', yaml('redis: { cluster: [r1] }', 'routes: [{ origin: "http://a" }]'),
      'routes.yaml:1:20: redis.cluster[0]: expected host:port such as "127.0.0.1:7000", got "r1"'],
    ['a redis section with neither url nor cluster', yaml('redis: { keyPrefix: "x:" }', 'routes: [{ origin: "http://a" }]'),
      'routes.yaml:1:8: redis: expected url or a non-empty cluster list, got neither'],
    ['a redis section with both url and cluster', yaml('redis: { url: "redis://r", cluster: ["r:7000"] }', 'routes: [{ origin: "http://a" }]'),
      'routes.yaml:1:8: redis: set either url or cluster, not both'],
    ['a section that is a list', yaml('listen: [8080]', 'routes: [{ origin: "http://a" }]'),
      'routes.yaml:1:9: listen: expected a mapping, got a list'],
    ['a route without origin', yaml('routes:', '  - path: /api'),
      'routes.yaml:2:5: routes[0].origin: required key is missing'],
    ['no routes key', yaml('listen: { port: 1 }'),
      'routes.yaml:1:1: routes: required key is missing'],
    ['an empty routes list', yaml('routes: []'),
      'routes.yaml:1:9: routes: expected a non-empty list of routes, got an empty list'],
    ['routes as a mapping', yaml('routes:', '  origin: http://a'),
      'routes.yaml:2:3: routes: expected a non-empty list of routes, got a mapping'],
    ['a top level that is a list', yaml('- origin: http://a'),
      'routes.yaml:1:1: expected a mapping at the top level, got a list'],
    ['a top level that is a string', yaml('hello'),
      'routes.yaml:1:1: expected a mapping at the top level, got "hello"'],
    ['a YAML syntax error', yaml('routes: [', '  { origin: http://a }'),
      'routes.yaml:3:1: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]'],
    ['a duplicate key', yaml('routes: [{ origin: "http://a" }]', 'routes: []'),
      'routes.yaml:2:1: YAML syntax error: Map keys must be unique'],
    ['an unknown tag', yaml('routes: [{ origin: !url "http://a" }]'),
      'routes.yaml:1:20: YAML: Unresolved tag: !url']
  ]
  for (const [what, text, problem] of table) {
    t.strictSame(problemsOf(t, text), [problem], what)
  }
})

t.test('an empty file is reported as empty', async (t) => {
  for (const text of ['', '\n', '# only a comment\n', '~\n']) {
    t.strictSame(problemsOf(t, text), ['routes.yaml: the file is empty; expected a mapping with at least a routes list'], JSON.stringify(text))
  }
})

t.test('unknown keys are errors at every level, with the allowed keys and a near miss', async (t) => {
  const problems = problemsOf(t, yaml(
    'colour: red',
    'cache: { maxVariant: 3 }',
    'redis: { url: "redis://r", db: 1 }',
    'routes:',
    '  - origin: http://a',
    '    maxttl: 1d',
    '    key: { query: [] }',
    '    timeouts: { idle: 5s }'
  ))
  t.strictSame(problems, [
    'routes.yaml:1:1: colour: unknown key (allowed: listen, admin, redis, cache, limits, purgeMethod, shutdownTimeout, trustedProxies, stripHeaders, redactQueryParams, cdn, webhooks, routes)',
    'routes.yaml:2:10: cache.maxVariant: unknown key, did you mean "maxVariants"? (allowed: memoryMaxBytes, maxObjectSize, maxVariants, l1MaxBytes, l1MaxTtl, coalesceWait, hitForMiss)',
    'routes.yaml:3:28: redis.db: unknown key (allowed: url, cluster, keyPrefix, commandTimeout, writeTimeout, breaker)',
    'routes.yaml:6:5: routes[0].maxttl: unknown key, did you mean "maxTtl"? (allowed: name, host, path, origin, enabled, defaultTtl, maxTtl, key, staleWhileRevalidate, staleIfError, keep, downstreamCacheControl, keepTagHeaders, tagHeader, storeContentTypes, storePostResponses, timeouts, maxConnections, l1, ttlJitter, refreshAhead, implicitCachingWithCookies, ignoreClientNoCache, languageSelection)',
    'routes.yaml:7:12: routes[0].key.query: unknown key (allowed: ignoreQuery, headers, cookies)',
    'routes.yaml:8:17: routes[0].timeouts.idle: unknown key (allowed: connect, headers, body, total)'
  ])
})

t.test('a key that is not a plain word is quoted in the path', async (t) => {
  t.strictSame(problemsOf(t, yaml('"max size": 1', 'routes: [{ origin: "http://a" }]')), [
    'routes.yaml:1:1: ["max size"]: unknown key (allowed: listen, admin, redis, cache, limits, purgeMethod, shutdownTimeout, trustedProxies, stripHeaders, redactQueryParams, cdn, webhooks, routes)'
  ])
})

t.test('all problems are reported at once, in file order', async (t) => {
  const problems = problemsOf(t, yaml(
    'listen: { port: -1 }',
    'routes:',
    '  - origin: http://a',
    '    maxTtl: ten',
    '    colour: red',
    '  - origin: ftp://x',
    '  - origin: ${MISSING}'
  ))
  t.strictSame(problems, [
    'routes.yaml:1:17: listen.port: expected a port number 0-65535, got -1',
    'routes.yaml:4:13: routes[0].maxTtl: expected a duration such as "10m", got "ten"',
    'routes.yaml:5:5: routes[0].colour: unknown key (allowed: name, host, path, origin, enabled, defaultTtl, maxTtl, key, staleWhileRevalidate, staleIfError, keep, downstreamCacheControl, keepTagHeaders, tagHeader, storeContentTypes, storePostResponses, timeouts, maxConnections, l1, ttlJitter, refreshAhead, implicitCachingWithCookies, ignoreClientNoCache, languageSelection)',
    'routes.yaml:6:13: routes[1].origin: expected an http(s) URL, got "ftp://x"',
    'routes.yaml:7:13: routes[2].origin: environment variable MISSING is not set (write ${MISSING:-default} to give a default)'
  ])
  let error: unknown
  try {
    parseConfig('routes: []\n', 'routes.yaml', {})
  } catch (caught) {
    error = caught
  }
  t.type(error, ConfigError)
  t.type(error, Error)
  if (error instanceof ConfigError) {
    t.equal(error.message, error.problems.join('\n'), 'the message is the problems, one a line')
    t.equal(error.code, 'CG_ERR_CONFIG_INVALID')
    t.notMatch(error.message, /\n\s+at /, 'no stack trace in the message')
  }
})

t.test('${VAR} expansion', async (t) => {
  const expansions: Array<[string, Env, string]> = [
    ['${A}', { A: 'x' }, 'x'],
    ['pre-${A}-post', { A: 'x' }, 'pre-x-post'],
    ['${A}${B}', { A: '1', B: '2' }, '12'],
    ['${A:-fallback}', {}, 'fallback'],
    ['${A:-fallback}', { A: '' }, 'fallback'],
    ['${A:-fallback}', { A: 'set' }, 'set'],
    ['${A:-}', {}, ''],
    ['${A:-http://h:1/p}', {}, 'http://h:1/p'],
    ['${A}', { A: '' }, ''],
    ['$${A}', { A: 'x' }, '${A}'],
    ['cost: $5 and $$', {}, 'cost: $5 and $$'],
    ['$$${A}', { A: 'x' }, '$${A}'],
    ['${A}', { A: '${B}' }, '${B}']
  ]
  for (const [text, env, expanded] of expansions) {
    t.strictSame(expandString(text, env), { text: expanded, problems: [] }, `${text} with ${JSON.stringify(env)}`)
  }
  t.strictSame(expandString('${toString}', {}).problems, ['environment variable toString is not set (write ${toString:-default} to give a default)'],
    'inherited object properties are not variables')
})

t.test('expansion happens in string scalars before validation', async (t) => {
  const text = yaml(
    'admin: { token: "${TOKEN:-}" }',
    'routes:',
    '  - origin: ${ORIGIN_URL:-http://127.0.0.1:3000}',
    '    downstreamCacheControl: "public, max-age=${AGE:-60}"',
    '    key: { headers: ["${TENANT_HEADER}"] }'
  )
  const config = parseConfig(text, 'routes.yaml', { ORIGIN_URL: 'https://origin.example/', TENANT_HEADER: 'X-Tenant', TOKEN: '' })
  t.equal(config.admin.token, undefined, 'an empty token is no token')
  t.equal(config.routes[0]?.origin, 'https://origin.example')
  t.equal(config.routes[0]?.downstreamCacheControl, 'public, max-age=60')
  t.strictSame(config.routes[0]?.key.headers, ['x-tenant'])

  t.strictSame(problemsOf(t, text, { ORIGIN_URL: 'nope' }), [
    'routes.yaml:3:13: routes[0].origin: expected an http(s) URL, got "nope"',
    'routes.yaml:5:22: routes[0].key.headers[0]: environment variable TENANT_HEADER is not set (write ${TENANT_HEADER:-default} to give a default)'
  ], 'the expanded value is validated; an unset variable is reported once, where it is used')
})

t.test('malformed variable references are errors', async (t) => {
  t.strictSame(problemsOf(t, yaml(
    'routes:',
    '  - origin: "http://a"',
    '    name: "${1x}"',
    '    path: "/${C"',
    '    downstreamCacheControl: "${}"'
  )), [
    'routes.yaml:3:11: routes[0].name: invalid variable reference "${1x}": expected ${NAME} or ${NAME:-default}',
    'routes.yaml:4:11: routes[0].path: unterminated "${" (write "$${" for a literal "${")',
    'routes.yaml:5:29: routes[0].downstreamCacheControl: invalid variable reference "${}": expected ${NAME} or ${NAME:-default}'
  ])
})

t.test('duplicate and unreachable routes are errors', async (t) => {
  const problems = problemsOf(t, yaml(
    'routes:',
    '  - name: api',
    '    path: /api',
    '    origin: http://a',
    '  - name: api',
    '    path: /api/v1',
    '    origin: http://b',
    '  - host: Shop.example.com',
    '    path: /',
    '    origin: http://c',
    '  - host: shop.example.com.',
    '    origin: http://d',
    '  - path: /api',
    '    origin: http://e',
    '  - path: /apix',
    '    origin: http://f',
    '  - name: route-6',
    '    path: /b',
    '    origin: http://g'
  ))
  t.strictSame(problems, [
    'routes.yaml:5:5: routes[1]: unreachable route: routes[0] (host "*" path "/api") comes first and matches every request this one would',
    'routes.yaml:5:11: routes[1].name: duplicate route name "api": already routes[0]',
    'routes.yaml:11:5: routes[3]: duplicate route: host "shop.example.com" path "/" is already routes[2]',
    'routes.yaml:13:5: routes[4]: duplicate route: host "*" path "/api" is already routes[0]'
  ])
})

t.test('a route name defaults to route-<index> and must stay unique', async (t) => {
  t.strictSame(problemsOf(t, yaml(
    'routes:',
    '  - path: /a',
    '    origin: http://a',
    '  - name: route-0',
    '    path: /b',
    '    origin: http://b'
  )), ['routes.yaml:4:11: routes[1].name: duplicate route name "route-0": already routes[0]'])
  const config = parseConfig(yaml('routes:', '  - { path: /a, origin: "http://a" }', '  - { path: /b, origin: "http://b", name: b }', '  - { path: /c, origin: "http://c" }'), 'routes.yaml', {})
  t.strictSame(config.routes.map((r) => r.name), ['route-0', 'b', 'route-2'])
})

t.test('a host route may precede host-less routes, and a host-less route may precede a narrower one', async (t) => {
  const config = parseConfig(yaml(
    'routes:',
    '  - { host: api.example.com, path: /, origin: "http://a" }',
    '  - { host: "::1", path: /x, origin: "http://b" }',
    '  - { path: /api, origin: "http://c" }',
    '  - { path: /apix, origin: "http://d" }',
    '  - { path: /, origin: "http://e" }'
  ), 'routes.yaml', {})
  t.strictSame(config.routes.map((r) => [r.host, r.path]),
    [['api.example.com', '/'], ['[::1]', '/x'], [undefined, '/api'], [undefined, '/apix'], [undefined, '/']])
})

t.test('YAML anchors and aliases are followed; an aliased duplicate route is reported at the alias', async (t) => {
  const text = yaml(
    'timeouts: &t { connect: 1s }',
    'routes:',
    '  - &r { origin: "http://a", path: /a, timeouts: *t }',
    '  - *r'
  )
  t.strictSame(problemsOf(t, text), [
    'routes.yaml:1:1: timeouts: unknown key (allowed: listen, admin, redis, cache, limits, purgeMethod, shutdownTimeout, trustedProxies, stripHeaders, redactQueryParams, cdn, webhooks, routes)',
    'routes.yaml:4:5: routes[1]: duplicate route: host "*" path "/a" is already routes[0]'
  ])
})

t.test('the result is deeply frozen', async (t) => {
  const config = await loadConfig(fixture('full.yaml'), {})
  const mutations: Array<[string, () => void]> = [
    ['assignment to a property (ES modules are strict)', () => { config.listen.port = 1 }],
    ['top level', () => { Object.assign(config, { file: 'x' }) }],
    ['a section', () => { Object.assign(config.listen, { port: 1 }) }],
    ['the routes list', () => { (config.routes as RouteConfig[]).push(defaultRoute) }],
    ['a route', () => { Object.assign(config.routes[0] ?? {}, { origin: 'http://evil' }) }],
    ['a route key list', () => { (config.routes[0]?.key.headers as string[]).push('x') }],
    ['route timeouts', () => { Object.assign(config.routes[0]?.timeouts ?? {}, { connect: 1 }) }],
    ['redis', () => { Object.assign(config.redis ?? {}, { url: 'redis://evil' }) }],
    ['purge allow list', () => { (config.purgeMethod.allow as string[])[0] = '0.0.0.0' }]
  ]
  for (const [what, mutate] of mutations) t.throws(mutate, TypeError, what)
  t.equal(config.listen.port, 8081)
})

t.test('a file that cannot be read is a ConfigError naming the file', async (t) => {
  await t.rejects(loadConfig('does-not-exist.yaml', {}), {
    name: 'ConfigError',
    code: 'CG_ERR_CONFIG_READ',
    problems: ["does-not-exist.yaml: cannot read file: ENOENT: no such file or directory, open 'does-not-exist.yaml'"]
  })
  const directory = fileURLToPath(new URL('fixtures', import.meta.url))
  await t.rejects(loadConfig(directory, {}), { name: 'ConfigError', message: new RegExp(`^${directory}: cannot read file: EISDIR`) })
})

t.test('parseConfig names the file it was given', async (t) => {
  t.strictSame(problemsOf(t, 'routes: []\n').map((p) => p.split(':')[0]), ['routes.yaml'])
  t.throws(() => parseConfig('routes: []\n', '/etc/cachegate/routes.yaml', {}), {
    message: '/etc/cachegate/routes.yaml:1:9: routes: expected a non-empty list of routes, got an empty list'
  })
})
