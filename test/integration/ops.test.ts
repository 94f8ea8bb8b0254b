/**
 * The operations endpoints of the admin listener: /healthz and /readyz (probes, no token),
 * the Redis memory settings check, /reload and /explain (token).
 */
import t, { type Test } from 'tap'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { ManualClock } from '../../src/clock.ts'
import { loadConfig } from '../../src/config/load.ts'
import { createGateway, type Gateway } from '../../src/gateway.ts'
import { createLogger } from '../../src/observability/logger.ts'
import { withGateway } from '../helpers/gateway.ts'
import { json, startOrigin } from '../helpers/origin.ts'
import { startRedis } from '../helpers/redis.ts'

const TOKEN = 'ops-test-token'
const auth = { authorization: `Bearer ${TOKEN}` }

async function getJson (url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number, body: Record<string, unknown> }> {
  const res = await fetch(url, { method, headers })
  return { status: res.status, body: await res.json() as Record<string, unknown> }
}

/** Polls GET /readyz until `until` holds (bounded: Redis reconnects back off up to 2 s). */
async function readyzUntil (adminUrl: string, until: (body: Record<string, unknown>) => boolean): Promise<{ status: number, body: Record<string, unknown> }> {
  let last = await getJson(`${adminUrl}/readyz`)
  for (let i = 0; i < 200 && !until(last.body); i++) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    last = await getJson(`${adminUrl}/readyz`)
  }
  return last
}

interface FileGateway {
  gateway: Gateway
  url: string
  adminUrl: string
  logLines: string[]
  /** Replaces routes.yaml (what the next reload reads). */
  write: (text: string) => Promise<void>
}

/** A gateway started from a routes.yaml on disk, so /reload has a file to read again. */
async function fromFile (t: Test, text: string): Promise<FileGateway> {
  const dir = await mkdtemp(join(tmpdir(), 'cachegate-ops-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'routes.yaml')
  await writeFile(file, text)
  const logLines: string[] = []
  const destination = new Writable({ write (chunk: Buffer, _enc, done) { logLines.push(chunk.toString()); done() } })
  const gateway = await createGateway({
    config: await loadConfig(file, {}),
    clock: new ManualClock(),
    logger: createLogger({ level: 'info', pretty: false, destination }),
    configSource: async () => await loadConfig(file, {})
  })
  const { port, adminPort } = await gateway.listen()
  t.teardown(async () => await gateway.close())
  return {
    gateway,
    url: `http://127.0.0.1:${port}`,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    logLines,
    write: async (next) => await writeFile(file, next)
  }
}

const routesYaml = (routes: string): string => `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0, token: ${TOKEN} }
routes:
${routes}`

t.test('/healthz and /readyz answer without the admin token; a memory gateway is ready', async (t) => {
  const gw = await withGateway(t, { config: { routes: [{ origin: 'http://127.0.0.1:9' }], admin: { token: TOKEN } } })
  t.same(await getJson(`${gw.adminUrl}/healthz`), { status: 200, body: { status: 'ok' } })
  const ready = await getJson(`${gw.adminUrl}/readyz`)
  t.equal(ready.status, 200)
  t.same(ready.body, { status: 'ready', store: 'memory', checks: { config: 'ok', listener: 'up' }, warnings: [] })
})

t.test('/metrics is open (Prometheus scrapes without a token) while /reload and /explain need the token', async (t) => {
  const gw = await withGateway(t, { config: { routes: [{ origin: 'http://127.0.0.1:9' }], admin: { token: TOKEN } } })
  const metrics = await fetch(`${gw.adminUrl}/metrics`)
  t.equal(metrics.status, 200)
  t.match(metrics.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
  t.match(await metrics.text(), /# TYPE cachegate_requests_total counter/)
  t.equal((await getJson(`${gw.adminUrl}/reload`, {}, 'POST')).status, 401)
  t.equal((await getJson(`${gw.adminUrl}/explain?url=http://a/`)).status, 401)
  t.equal((await getJson(`${gw.adminUrl}/explain?url=http://a/`, { authorization: 'Bearer wrong' })).status, 403)
})

t.test('readiness turns degraded (still 200) when Redis stops and ready again when it is back', async (t) => {
  const redis = await startRedis(t, { maxmemory: '64mb', policy: 'allkeys-lru' })
  const origin = await startOrigin(t, json({ ok: true }, { 'cache-control': 'max-age=60' }))
  const gw = await withGateway(t, { config: { routes: [{ origin: origin.url }], redis: { url: redis.url } } })
  const ready = await getJson(`${gw.adminUrl}/readyz`)
  t.equal(ready.status, 200)
  t.match(ready.body, { status: 'ready', store: 'redis', checks: { config: 'ok', listener: 'up', redis: 'ok' } })

  await redis.stop()
  const degraded = await readyzUntil(gw.adminUrl, (b) => b.status !== 'ready')
  t.equal(degraded.status, 200, 'degraded is still 200: the gateway serves from the origin')
  t.match(degraded.body, { status: 'degraded', checks: { redis: 'unreachable' }, detail: /Redis is unreachable .*every request goes to the origin/ })
  t.equal((await gw.get('/a')).status, 200, 'and it does serve')

  await redis.start()
  const back = await readyzUntil(gw.adminUrl, (b) => b.status === 'ready')
  t.match(back.body, { status: 'ready', checks: { redis: 'ok' } })
  t.notOk('detail' in back.body)
})

t.test('readiness is 503 once shutdown has begun, while an in-flight request finishes', async (t) => {
  let release!: () => void
  const held = new Promise<void>((resolve) => { release = resolve })
  let arrived!: () => void
  const atOrigin = new Promise<void>((resolve) => { arrived = resolve })
  const origin = await startOrigin(t, async (req, res) => {
    arrived()
    await held
    json({ slow: true })(req, res, 0)
  })
  const gw = await withGateway(t, { config: { routes: [{ origin: origin.url }] } })
  const inFlight = gw.get('/slow')
  await atOrigin
  const closing = gw.gateway.close()
  const during = await getJson(`${gw.adminUrl}/readyz`)
  t.equal(during.status, 503)
  t.match(during.body, { status: 'not-ready', checks: { listener: 'stopping' }, detail: /shutting down/ })
  release()
  const reply = await inFlight
  t.equal(reply.status, 200, 'the in-flight request completed')
  t.equal(reply.body, '{"slow":true}')
  await closing
})

t.test('a Redis with maxmemory-policy noeviction gets a warning naming allkeys-lru, in the log and on /readyz', async (t) => {
  const redis = await startRedis(t, { maxmemory: '64mb', policy: 'noeviction' })
  const gw = await withGateway(t, { config: { routes: [{ origin: 'http://127.0.0.1:9' }], redis: { url: redis.url } } })
  await gw.gateway.health.settled()
  const { body } = await getJson(`${gw.adminUrl}/readyz`)
  t.match(body, { status: 'ready', checks: { redisSettings: 'warning' } })
  const warnings = body.warnings as string[]
  t.equal(warnings.length, 1)
  t.match(warnings[0], /maxmemory-policy is noeviction: once full, Redis refuses writes.*set maxmemory-policy allkeys-lru or allkeys-lfu/)
  t.ok(gw.logLines.some((l) => /"level":40/.test(l) && l.includes('noeviction') && l.includes('allkeys-lru')), 'logged as a warning')
})

t.test('a Redis without maxmemory gets a warning that it has no memory limit', async (t) => {
  const redis = await startRedis(t, { policy: 'allkeys-lru' })
  const gw = await withGateway(t, { config: { routes: [{ origin: 'http://127.0.0.1:9' }], redis: { url: redis.url } } })
  await gw.gateway.health.settled()
  const { body } = await getJson(`${gw.adminUrl}/readyz`)
  t.match(body.warnings, [/no memory limit \(maxmemory 0\).*set maxmemory/])
})

t.test('a Redis with allkeys-lru and a maxmemory gets no settings warning', async (t) => {
  const redis = await startRedis(t, { maxmemory: '64mb', policy: 'allkeys-lru' })
  const gw = await withGateway(t, { config: { routes: [{ origin: 'http://127.0.0.1:9' }], redis: { url: redis.url } } })
  await gw.gateway.health.settled()
  const { body } = await getJson(`${gw.adminUrl}/readyz`)
  t.match(body, { status: 'ready', checks: { redisSettings: 'ok' }, warnings: [] })
  t.notOk(gw.logLines.some((l) => /maxmemory|noeviction|could not check/.test(l)), 'nothing logged about the settings')
})

t.test('the Redis settings are checked again after a reconnect', async (t) => {
  const redis = await startRedis(t, { maxmemory: '64mb', policy: 'allkeys-lru' })
  const gw = await withGateway(t, { config: { routes: [{ origin: 'http://127.0.0.1:9' }], redis: { url: redis.url } } })
  await gw.gateway.health.settled()
  t.match((await getJson(`${gw.adminUrl}/readyz`)).body, { checks: { redisSettings: 'ok' }, warnings: [] })
  const admin = redis.client()
  await admin.config('SET', 'maxmemory-policy', 'noeviction')
  await admin.client('KILL', 'TYPE', 'normal')
  const after = await readyzUntil(gw.adminUrl, (b) => (b.warnings as string[]).length > 0)
  t.match(after.body, { status: 'ready', checks: { redisSettings: 'warning' }, warnings: [/maxmemory-policy is noeviction/] })
})

t.test('a Redis that refuses CONFIG (as managed Redis does) gets a warning that the settings could not be checked', async (t) => {
  const redis = await startRedis(t, { maxmemory: '64mb', policy: 'allkeys-lru' })
  await redis.client().call('ACL', 'SETUSER', 'app', 'on', '>secret', '~*', '&*', '+@all', '-config')
  const gw = await withGateway(t, { config: { routes: [{ origin: 'http://127.0.0.1:9' }], redis: { url: `redis://app:secret@127.0.0.1:${redis.port}` } } })
  await gw.gateway.health.settled()
  const { body } = await getJson(`${gw.adminUrl}/readyz`)
  t.match(body, { status: 'ready', checks: { redis: 'ok', redisSettings: 'warning' } })
  t.match(body.warnings, [/could not check Redis memory settings \(CONFIG GET refused: NOPERM.*\); set maxmemory and maxmemory-policy allkeys-lru or allkeys-lfu/])
})

t.test('POST /reload with a valid file changes routing for new requests', async (t) => {
  const a = await startOrigin(t, json({ from: 'a' }))
  const b = await startOrigin(t, json({ from: 'b' }))
  const gw = await fromFile(t, routesYaml(`  - { name: one, path: /, origin: "${a.url}" }\n`))
  t.equal(await (await fetch(`${gw.url}/x`)).text(), '{"from":"a"}')

  await gw.write(routesYaml(`  - { name: api, path: /api, origin: "${b.url}" }\n  - { name: rest, path: /, origin: "${a.url}" }\n`))
  const reload = await getJson(`${gw.adminUrl}/reload`, auth, 'POST')
  t.equal(reload.status, 200)
  t.same(reload.body, { status: 'reloaded', routes: ['api', 'rest'], restartRequired: [] })
  t.equal(await (await fetch(`${gw.url}/api/x`)).text(), '{"from":"b"}', 'the new route serves')
  t.equal(await (await fetch(`${gw.url}/x`)).text(), '{"from":"a"}')
  t.ok(gw.logLines.some((l) => l.includes('configuration reloaded')))
})

t.test('POST /reload with an invalid file answers 400 with the problems and keeps the running routes', async (t) => {
  const a = await startOrigin(t, json({ from: 'a' }))
  const gw = await fromFile(t, routesYaml(`  - { name: one, path: /, origin: "${a.url}" }\n`))
  await gw.write(routesYaml(`  - { name: one, path: /, origin: "${a.url}", maxTtl: ten }\n`))
  const reload = await getJson(`${gw.adminUrl}/reload`, auth, 'POST')
  t.equal(reload.status, 400)
  t.match(reload.body, { statusCode: 400, code: 'CG_ERR_CONFIG_INVALID', error: 'Bad Request', message: /running configuration is kept/ })
  t.match(reload.body.problems, [/routes\.yaml:4:\d+: routes\[0\]\.maxTtl: expected a duration such as "10m", got "ten"/])
  t.ok(gw.logLines.some((l) => l.includes('configuration reload refused') && l.includes('routes[0].maxTtl')), 'the same message is logged')
  t.equal((await fetch(`${gw.url}/x`)).status, 200, 'the old routes keep serving')
  t.same(gw.gateway.config().routes.map((r) => r.name), ['one'])
})

t.test('POST /reload says which changed settings wait for a restart', async (t) => {
  const a = await startOrigin(t, json({ from: 'a' }))
  const gw = await fromFile(t, routesYaml(`  - { name: one, path: /, origin: "${a.url}" }\n`))
  await gw.write(routesYaml(`  - { name: one, path: /, origin: "${a.url}" }\n`) + 'cache: { maxVariants: 4 }\nshutdownTimeout: 3s\n')
  const reload = await getJson(`${gw.adminUrl}/reload`, auth, 'POST')
  t.same(reload.body.restartRequired, ['cache', 'shutdownTimeout'])
})

t.test('/explain shows the route, the key, each stored variant with its age, freshness, stale windows and tags', async (t) => {
  const origin = await startOrigin(t, (req, res) => {
    if (req.url === '/private') {
      json({ secret: true }, { 'cache-control': 'private' })(req, res, 0)
      return
    }
    json({ lang: req.headers['accept-language'] }, {
      'cache-control': 'max-age=60, stale-while-revalidate=30, stale-if-error=300',
      vary: 'Accept-Language',
      'surrogate-key': 'products product-1'
    })(req, res, 0)
  })
  const gw = await withGateway(t, { config: { routes: [{ name: 'shop', host: 'shop.example', origin: origin.url, key: { ignoreQuery: ['utm_*'] } }], admin: { token: TOKEN } } })
  await gw.get('/products/1', { host: 'shop.example', 'accept-language': 'en' })
  await gw.get('/products/1', { host: 'shop.example', 'accept-language': 'fr' })
  await gw.get('/private', { host: 'shop.example' })
  await gw.settled()
  gw.clock.advance(70_000)

  const explain = async (url: string, extra = ''): Promise<Record<string, unknown>> =>
    (await getJson(`${gw.adminUrl}/explain?url=${encodeURIComponent(url)}${extra}`, auth)).body
  const e = await explain('http://shop.example/products/1?utm_source=x')
  t.match(e, {
    route: { name: 'shop', host: 'shop.example', path: '/', origin: origin.url, enabled: true },
    key: 'http://shop.example/products/1',
    vary: ['accept-language'],
    lastDecision: { status: 200, stored: true, freshnessSource: 'max-age' },
    message: '2 variants are stored; the last origin response (200) was stored'
  })
  const variants = e.variants as Array<Record<string, unknown>>
  t.same(variants.map((v) => v.values).sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y))), [{ 'accept-language': 'en' }, { 'accept-language': 'fr' }])
  t.match(variants[0], {
    status: 200,
    age: 70,
    freshnessLifetime: 60,
    ttl: -10,
    state: 'stale',
    detail: 'stale-while-revalidate',
    staleWhileRevalidate: { window: 30, remaining: 20 },
    staleIfError: { window: 300, remaining: 290 },
    tags: ['products', 'product-1'],
    bodyBytes: 13
  })

  const one = await explain('http://shop.example/products/1', `&header=${encodeURIComponent('Accept-Language: de')}`)
  t.equal((one.variants as unknown[]).length, 2, 'a header selecting a variant nobody stored adds nothing')

  const priv = await explain('http://shop.example/private')
  t.match(priv, { vary: null, variants: [], lastDecision: { status: 200, stored: false, detail: 'private' }, message: /not stored: private/ })

  const unknown = await explain('http://elsewhere.example/products/1')
  t.same(unknown, { url: 'http://elsewhere.example/products/1', route: null, message: 'No route serves host "elsewhere.example" and path "/products/1": a request for it is answered 404 (CG_ERR_NO_ROUTE)' })

  t.equal((await getJson(`${gw.adminUrl}/explain`, auth)).status, 400, 'the url parameter is required')
})
