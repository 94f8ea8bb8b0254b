import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { loadConfig, parseConfig } from '../../src/config/load.ts'
import { sectionSchemas } from '../../src/config/schema.ts'

const shipped = fileURLToPath(new URL('../../routes.yaml', import.meta.url))

t.test('the shipped routes.yaml loads with an empty environment', async (t) => {
  const config = await loadConfig(shipped, {})
  t.equal(config.routes.length, 1)
  t.match(config.routes[0], {
    name: 'default',
    host: undefined,
    path: '/',
    origin: 'http://127.0.0.1:3000',
    defaultTtl: undefined,
    maxTtl: 86_400_000,
    key: { ignoreQuery: ['utm_*', 'fbclid', 'gclid'], headers: [], cookies: [] },
    staleWhileRevalidate: 30_000,
    staleIfError: 300_000
  })
  t.equal(config.admin.token, undefined, 'no admin token unless CACHEGATE_ADMIN_TOKEN is set')
  t.equal(config.admin.webhookSecret, undefined)
  t.equal(config.redis, undefined, 'the memory store by default')
})

t.test('the shipped routes.yaml takes the origin and admin token from the environment', async (t) => {
  const config = await loadConfig(shipped, { ORIGIN_URL: 'https://api.example.com/', CACHEGATE_ADMIN_TOKEN: 'secret' })
  t.equal(config.routes[0]?.origin, 'https://api.example.com')
  t.equal(config.admin.token, 'secret')
})

t.test('every commented-out key in the shipped routes.yaml is valid, and the ones called defaults are', async (t) => {
  // Uncomment "# key: value" lines whose key the schema knows; prose comments stay comments.
  const known = new Set(Object.values(sectionSchemas).flatMap((schema) => Object.keys(schema.properties)))
  const text = await readFile(shipped, 'utf8')
  const uncommented = text.split('\n').map((line) => {
    const match = /^(\s*)# (\s*([A-Za-z0-9]+):.*)$/.exec(line)
    return match !== null && known.has(match[3] ?? '') ? `${match[1] ?? ''}${match[2] ?? ''}` : line
  }).join('\n')
  t.not(uncommented, text, 'some keys were uncommented')

  const plain = parseConfig(text, 'routes.yaml', {})
  const everything = parseConfig(uncommented, 'routes.yaml', {})
  t.strictSame(everything.cache, plain.cache, 'cache: the values shown are the defaults')
  t.strictSame(everything.limits, plain.limits, 'limits: the values shown are the defaults')
  t.strictSame(everything.purgeMethod, plain.purgeMethod, 'purgeMethod: the values shown are the defaults')
  t.match(everything.redis, { keyPrefix: 'cg:', commandTimeout: 50 }, 'redis: keyPrefix and commandTimeout shown are the defaults')
  const [shown, actual] = [everything.routes[0], plain.routes[0]]
  for (const key of ['enabled', 'keepTagHeaders', 'timeouts', 'maxConnections', 'l1', 'ttlJitter', 'refreshAhead'] as const) {
    t.strictSame(shown?.[key], actual?.[key], `route ${key}: the value shown is the default`)
  }
})
