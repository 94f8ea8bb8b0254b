/**
 * Purges forwarded to CDNs: each provider's fake API (a real HTTP server) checks the exact
 * request its documentation describes (method, path, headers, JSON body, batching), and the
 * purge response reports each CDN's state. Retry waits go through an injected sleep that
 * records the delay and returns at once.
 */
import t, { type Test } from 'tap'
import { signBody } from '../../src/invalidation/cdn/webhook.ts'
import { Fastly } from '../../src/invalidation/cdn/fastly.ts'
import { withGateway, type GatewayHandle } from '../helpers/gateway.ts'
import { startOrigin } from '../helpers/origin.ts'
import { reply, startFakeApi, type FakeApi } from '../helpers/fake-api.ts'
import { catalog, get, isHit, purge, SHOP, TOKEN } from '../integration/purge-helpers.ts'

interface Setup {
  gw: GatewayHandle
  api: FakeApi
  sleeps: number[]
}

async function setup (t: Test, cdn: (api: FakeApi) => Array<Record<string, unknown>>, options: { random?: () => number } = {}): Promise<Setup> {
  const origin = await startOrigin(t, catalog())
  const api = await startFakeApi(t)
  const sleeps: number[] = []
  const gw = await withGateway(t, {
    config: { admin: { token: TOKEN }, cdn: cdn(api), routes: [{ origin: origin.url }] },
    cdnSleep: async (ms) => { sleeps.push(ms) },
    random: options.random ?? (() => 0)
  })
  return { gw, api, sleeps }
}

const cloudflare = (api: FakeApi): Array<Record<string, unknown>> =>
  [{ provider: 'cloudflare', zone: 'zone-123', token: 'cf-secret-token', apiBase: `${api.url}/client/v4` }]
const fastly = (api: FakeApi): Array<Record<string, unknown>> =>
  [{ provider: 'fastly', service: 'svc-9', token: 'fastly-secret-key', apiBase: api.url }]

const json = (body: string): unknown => JSON.parse(body)

t.test('cloudflare: a tag purge is posted to the zone\'s purge_cache with a bearer token, after the gateway dropped its copy', async (t) => {
  const { gw, api } = await setup(t, cloudflare)
  await get(gw, SHOP, '/products/1')
  let hitWhenCdnCalled: boolean | undefined
  api.script(async (_call, res) => {
    hitWhenCdnCalled = isHit(await gw.get('/products/1', { host: SHOP }))
    reply(200, { success: true, errors: [], result: { id: 'x' } })(_call, res, 0)
  })
  const res = await purge(gw, { tags: ['product-1'] })
  t.equal(res.status, 200)
  t.same(res.body.cdn, [{ cdn: 'cloudflare', provider: 'cloudflare', state: 'done', batches: 1 }])
  t.equal(api.calls.length, 1)
  const call = api.calls[0]
  t.equal(call?.method, 'POST')
  t.equal(call?.url, '/client/v4/zones/zone-123/purge_cache')
  t.equal(call?.headers.authorization, 'Bearer cf-secret-token')
  t.match(call?.headers['content-type'], /^application\/json/)
  t.same(json(call?.body ?? ''), { tags: ['product-1'] })
  t.equal(hitWhenCdnCalled, false, 'gateway first, then CDN: the CDN refetch finds no stale copy at the gateway')
})

t.test('cloudflare: 250 tags go in batches of 100; URLs as files, prefixes without scheme, hosts, and everything', async (t) => {
  const { gw, api } = await setup(t, cloudflare)
  const tags = Array.from({ length: 250 }, (_, i) => `t${i}`)
  const res = await purge(gw, { tags, urls: ['https://shop.example/a?x=1'], prefixes: ['https://shop.example/blog/'], hosts: ['shop.example'] })
  t.match(res.body.cdn, [{ state: 'done', batches: 6 }])
  t.same(api.calls.map((c) => json(c.body)), [
    { files: ['https://shop.example/a?x=1'] },
    { tags: tags.slice(0, 100) },
    { tags: tags.slice(100, 200) },
    { tags: tags.slice(200) },
    { hosts: ['shop.example'] },
    { prefixes: ['shop.example/blog/'] }
  ])
  await purge(gw, { all: true })
  t.same(json(api.calls.at(-1)?.body ?? ''), { purge_everything: true })
})

t.test('cloudflare: a 200 with success false is a failure carrying Cloudflare\'s message', async (t) => {
  const { gw, api } = await setup(t, cloudflare)
  api.script(reply(200, { success: false, errors: [{ code: 1012, message: 'Request must contain one of "purge_everything", "files", "tags"' }] }))
  const res = await purge(gw, { tags: ['a'] })
  t.same(res.body.cdn, [{ cdn: 'cloudflare', provider: 'cloudflare', state: 'failed', batches: 1, message: 'Request must contain one of "purge_everything", "files", "tags"' }])
})

t.test('fastly: surrogate keys in batches of 256 with Fastly-Key; soft purges send Fastly-Soft-Purge; URLs one by one; prefixes and hosts refused', async (t) => {
  const { gw, api } = await setup(t, fastly)
  const tags = Array.from({ length: 256 }, (_, i) => `k${i}`)
  const res = await purge(gw, { tags, urls: ['https://shop.example/products/1'], prefixes: ['https://shop.example/p/'], hosts: ['shop.example'], mode: 'soft' })
  t.same(res.body.cdn, [{
    cdn: 'fastly',
    provider: 'fastly',
    state: 'done',
    batches: 2,
    refused: [
      'prefixes: Fastly has no prefix purge; tag the responses (Surrogate-Key) and purge by tag',
      'hosts: Fastly has no host purge; purge by tag, or everything'
    ]
  }])
  const [first, third] = api.calls
  t.equal(first?.url, '/service/svc-9/purge')
  t.equal(first?.headers['fastly-key'], 'fastly-secret-key')
  t.equal(first?.headers['fastly-soft-purge'], '1')
  t.same(json(first?.body ?? ''), { surrogate_keys: tags })
  t.equal(third?.url, '/purge/shop.example/products/1')
  t.equal(third?.body, '')
  t.equal(third?.headers['fastly-soft-purge'], '1')

  await purge(gw, { tags: ['x'] })
  t.equal(api.calls.at(-1)?.headers['fastly-soft-purge'], undefined, 'a hard purge is not soft')
  await purge(gw, { all: true, mode: 'soft' })
  t.equal(api.calls.at(-1)?.url, '/service/svc-9/purge_all')
  t.equal(api.calls.at(-1)?.headers['fastly-soft-purge'], undefined, 'purge_all has no soft mode')
})

t.test('fastly: more than 256 surrogate keys are split into batches of 256', async (t) => {
  const provider = new Fastly({ provider: 'fastly', name: 'f', service: 's', token: 'k', apiBase: 'http://x', maxAttempts: 1, timeout: 1000 })
  const tags = Array.from({ length: 600 }, (_, i) => `k${i}`)
  t.same(provider.plan({ tags, urls: [], prefixes: [], hosts: [], all: false, soft: false }).batches.map((b) => b.items.length), [256, 256, 88])
})

t.test('fastly: a purge made only of refused parts reports failed with the reason and sends nothing', async (t) => {
  const { gw, api } = await setup(t, fastly)
  const res = await purge(gw, { prefixes: ['https://shop.example/p/'] })
  t.match(res.body.cdn, [{ state: 'failed', batches: 0, message: /fastly cannot do this purge: prefixes: Fastly has no prefix purge/ }])
  t.equal(api.calls.length, 0)
  t.match(await gw.gateway.metrics.text(), /cachegate_cdn_purge_total\{provider="fastly",result="refused"\} 1/)
})

t.test('a 429 with Retry-After is retried after exactly that long; the response says queued and the batch is delivered later', async (t) => {
  const { gw, api, sleeps } = await setup(t, cloudflare)
  api.script(reply(429, { success: false, errors: [{ code: 10000, message: 'Rate limited' }] }, { 'retry-after': '7' }))
  const res = await purge(gw, { tags: ['a'] })
  t.same(res.body.cdn, [{ cdn: 'cloudflare', provider: 'cloudflare', state: 'queued', batches: 1, message: 'Rate limited' }])
  await api.answered(2)
  await gw.gateway.forwarder?.drained()
  t.same(sleeps, [7000])
  t.equal(api.calls.length, 2)
  t.same(api.calls[1]?.body, api.calls[0]?.body, 'the same batch again')
  const text = await gw.gateway.metrics.text()
  t.match(text, /cachegate_cdn_purge_total\{provider="cloudflare",result="retried"\} 1/)
  t.match(text, /cachegate_cdn_purge_total\{provider="cloudflare",result="done"\} 1/)
  t.match(text, /cachegate_cdn_outbox_depth\{cdn="cloudflare"\} 0/)
})

t.test('5xx answers back off exponentially with jitter, and the batch fails after maxAttempts with one warn line per failed attempt', async (t) => {
  const origin = await startOrigin(t, catalog())
  const api = await startFakeApi(t, reply(503, 'upstream busy'))
  const sleeps: number[] = []
  const randoms = [0, 1, 0.5]
  const gw = await withGateway(t, {
    config: { admin: { token: TOKEN }, cdn: [{ provider: 'webhook', url: `${api.url}/hook`, maxAttempts: 4 }], routes: [{ origin: origin.url }] },
    cdnSleep: async (ms) => { sleeps.push(ms) },
    random: () => randoms.shift() ?? 0
  })
  const res = await purge(gw, { urls: ['https://shop.example/x'] })
  t.match(res.body.cdn, [{ state: 'queued', message: 'upstream busy' }])
  await api.answered(4)
  await gw.gateway.forwarder?.drained()
  // 1 s × 2^(n-1), scaled into [50 %, 100 %] by the jitter.
  t.same(sleeps, [500, 2000, 3000])
  t.equal(api.calls.length, 4)
  const warns = gw.logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.level === 40 && String(l.msg).startsWith('CDN purge batch failed'))
  t.equal(warns.length, 4)
  t.match(warns.at(-1), { cdn: 'webhook', attempt: 4, gaveUp: true, err: 'upstream busy' })
  t.match(await gw.gateway.metrics.text(), /cachegate_cdn_purge_total\{provider="webhook",result="failed"\} 1/)
})

t.test('a refused connection is retried like a 5xx', async (t) => {
  const origin = await startOrigin(t, catalog())
  const api = await startFakeApi(t)
  const port = api.port
  await api.close()
  const sleeps: number[] = []
  const gw = await withGateway(t, {
    config: { admin: { token: TOKEN }, cdn: [{ provider: 'fastly', service: 's', token: 'k', apiBase: `http://127.0.0.1:${port}`, maxAttempts: 2 }], routes: [{ origin: origin.url }] },
    cdnSleep: async (ms) => { sleeps.push(ms) },
    random: () => 0
  })
  const res = await purge(gw, { tags: ['a'] })
  t.match(res.body.cdn, [{ state: 'queued', message: /network error: ECONNREFUSED/ }])
  await gw.gateway.forwarder?.drained()
  t.same(sleeps, [500])
  t.match(await gw.gateway.metrics.text(), /cachegate_cdn_purge_total\{provider="fastly",result="failed"\} 1/)
})

t.test('a 4xx other than 429 fails at once with the provider\'s message', async (t) => {
  const { gw, api, sleeps } = await setup(t, fastly)
  api.script(reply(401, { msg: 'Provided credentials are missing or invalid' }))
  const res = await purge(gw, { tags: ['a'] })
  t.same(res.body.cdn, [{ cdn: 'fastly', provider: 'fastly', state: 'failed', batches: 1, message: 'Provided credentials are missing or invalid' }])
  t.same(sleeps, [])
  t.equal(api.calls.length, 1)
})

t.test('credentials never reach a log line, whatever fails', async (t) => {
  const origin = await startOrigin(t, catalog())
  const api = await startFakeApi(t, reply(500, { success: false, errors: [{ message: 'boom' }] }))
  const gw = await withGateway(t, {
    config: {
      admin: { token: TOKEN },
      cdn: [
        { provider: 'cloudflare', zone: 'z', token: 'SECRET-CF-TOKEN', apiBase: api.url, maxAttempts: 2 },
        { provider: 'fastly', service: 's', token: 'SECRET-FASTLY-KEY', apiBase: api.url, maxAttempts: 2 },
        { provider: 'webhook', url: `${api.url}/h`, secret: 'SECRET-HOOK', maxAttempts: 2 }
      ],
      routes: [{ origin: origin.url }]
    },
    cdnSleep: async () => undefined
  })
  await purge(gw, { tags: ['a'] })
  await gw.gateway.forwarder?.drained()
  t.equal(api.calls.length, 6)
  const logs = gw.logLines.join('')
  t.match(logs, /CDN purge batch failed/)
  for (const secret of ['SECRET-CF-TOKEN', 'SECRET-FASTLY-KEY', 'SECRET-HOOK']) t.notMatch(logs, secret)
})

t.test('webhook: a JSON purge description signed like cachegate\'s own webhooks', async (t) => {
  const { gw, api } = await setup(t, (api) => [{ provider: 'webhook', name: 'downstream', url: `${api.url}/purge-hook`, secret: 'hook-secret' }])
  const res = await purge(gw, { tags: ['a', 'b'], mode: 'soft' })
  t.match(res.body.cdn, [{ cdn: 'downstream', provider: 'webhook', state: 'done', batches: 1 }])
  const call = api.calls[0]
  t.equal(call?.url, '/purge-hook')
  t.equal(call?.headers['x-cachegate-signature'], signBody('hook-secret', call?.body ?? ''))
  t.match(json(call?.body ?? ''), { cdn: 'downstream', kind: 'tags', items: ['a', 'b'], soft: true, id: String, at: '2026-01-01T00:00:00.000Z' })
})

t.test('the PURGE method is forwarded as a URL purge of the request\'s key', async (t) => {
  const origin = await startOrigin(t, catalog())
  const api = await startFakeApi(t)
  const gw = await withGateway(t, {
    config: { purgeMethod: { enabled: true }, cdn: cloudflare(api), routes: [{ origin: origin.url }] }
  })
  await get(gw, SHOP, '/products/1')
  const res = await gw.request('/products/1', { method: 'PURGE', headers: { host: SHOP } })
  t.equal(res.status, 200)
  t.match(JSON.parse(res.body), { purged: 1, cdn: [{ state: 'done' }] })
  t.same(json(api.calls[0]?.body ?? ''), { files: ['http://shop.example/products/1'] })
})

t.test('a purge that fails at the gateway is not forwarded', async (t) => {
  const { gw, api } = await setup(t, cloudflare)
  const res = await purge(gw, { tags: 'not-a-list' })
  t.equal(res.status, 400)
  t.equal(api.calls.length, 0)
})
