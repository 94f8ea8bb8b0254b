/**
 * What the origin receives, and that the key records it. A client may not speak for the
 * proxies in front of the gateway (forwarding and override fields, X-Forwarded-For, Forwarded)
 * unless it is one of them (trustedProxies), and a field the client's Connection header takes
 * away from the origin may not select a variant the origin never answered for.
 *
 * The origin here reflects the request fields it received into its body, so whatever reaches
 * it would reach every client the answer is shared with.
 */
import t from 'tap'
import type { Test } from 'tap'
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import { request as undiciRequest } from 'undici'
import { withGateway, type GatewayHandle, type GatewayOptions } from '../helpers/gateway.ts'
import { startOrigin } from '../helpers/origin.ts'
import { rawGet } from '../helpers/raw.ts'
import { startRedis } from '../helpers/redis.ts'

type StoreKind = 'memory' | 'redis'

const redis = await startRedis(t)
let prefixes = 0

async function gateway (t: Test, kind: StoreKind, options: GatewayOptions): Promise<GatewayHandle> {
  if (kind === 'memory') return await withGateway(t, options)
  return await withGateway(t, { ...options, config: { ...options.config, redis: { url: redis.url, keyPrefix: `fwd${++prefixes}:` } } })
}

/** An origin that answers with the request fields it received, shareable for ten minutes. */
function reflecting (extra: Record<string, string> = {}) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const body = JSON.stringify(req.headers)
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'public, max-age=600', ...extra })
    res.end(body)
  }
}

/** Client-supplied fields that claim a host, scheme, port, path, method or client address. */
const CLIENT_FORWARDING: Record<string, string> = {
  'x-forwarded-ssl': 'on',
  'front-end-https': 'on',
  'x-url-scheme': 'https',
  'x-real-ip': '198.51.100.66',
  'true-client-ip': '198.51.100.66',
  'x-forwarded-path': '/evil',
  'x-original-path': '/evil',
  'x-override-url': '/evil',
  'x-forwarded-prefix': '/evil',
  'x-forwarded-port': '6666',
  'x-forwarded-server': 'evil.test',
  'x-original-url': '/evil',
  'x-rewrite-url': '/evil',
  'x-http-method-override': 'DELETE',
  'x-http-method': 'DELETE',
  'x-method-override': 'DELETE',
  'x-forwarded-scheme': 'https',
  'x-host': 'evil.test',
  'x-original-host': 'evil.test',
  forwarded: 'for=198.51.100.66;host=evil.test;proto=https'
}

/** The same names spelt with underscores, as llhttp hands them over (CGI-style origins read both as one). */
const UNDERSCORED: Record<string, string> = Object.fromEntries([
  ...Object.entries(CLIENT_FORWARDING).filter(([name]) => name.includes('-')).map(([name, value]) => [name.replaceAll('-', '_'), value]),
  ['x_forwarded_host', 'evil.test'],
  ['x_forwarded_proto', 'https'],
  ['x_forwarded_for', '198.51.100.66']
])

function seenBy (origin: { requests: Array<{ url: string, headers: IncomingHttpHeaders }> }, url: string): IncomingHttpHeaders {
  const found = origin.requests.findLast((r) => r.url === url)
  if (found === undefined) throw new Error(`the origin never saw ${url}`)
  return found.headers
}

function behaviours (kind: StoreKind): void {
  t.test(`on the ${kind} store`, async (t) => {
    t.test('no client-supplied forwarding or override field reaches the origin, in any spelling, cached or passed through', async (t) => {
      const origin = await startOrigin(t, reflecting())
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const host = new URL(gw.url).host
      const sent = { ...CLIENT_FORWARDING, ...UNDERSCORED, 'x-forwarded-host': 'evil.test', 'x-forwarded-proto': 'https' }
      const cached = await gw.get('/page', sent)
      const passed = await gw.request('/form', { method: 'POST', headers: sent, body: 'x' })
      for (const [path, reply] of [['/page', cached], ['/form', passed]] as const) {
        const seen = seenBy(origin, path)
        for (const name of Object.keys({ ...CLIENT_FORWARDING, ...UNDERSCORED })) t.equal(seen[name], undefined, `${path}: ${name} is not forwarded`)
        t.match(seen, { 'x-forwarded-host': host, 'x-forwarded-proto': 'http', 'x-forwarded-for': '127.0.0.1' }, `${path}: the gateway's own values only`)
        t.notMatch(reply.body, /evil|198\.51\.100\.66|DELETE|https/, `${path}: nothing of it comes back`)
      }
      await gw.settled()
      const victim = await gw.get('/page')
      t.match(victim.header('cache-status'), /; hit/)
      t.equal(victim.body, cached.body, 'the stored answer is the plain one')
    })

    t.test('a header name with an underscore is not forwarded unless the route keys on it', async (t) => {
      const origin = await startOrigin(t, reflecting())
      const gw = await gateway(t, kind, { config: { routes: [{ path: '/keyed', origin: origin.url, key: { headers: ['x_tenant'] } }, { origin: origin.url }] } })
      await gw.get('/plain', { x_tenant: 'evil', 'x-tenant': 'acme' })
      t.equal(seenBy(origin, '/plain').x_tenant, undefined, 'an origin that reads x_tenant as X-Tenant sees only the dash spelling')
      t.equal(seenBy(origin, '/plain')['x-tenant'], 'acme')
      await gw.get('/keyed', { x_tenant: 'acme' })
      t.equal(seenBy(origin, '/keyed').x_tenant, 'acme', 'a keyed underscore name is forwarded')
      await gw.settled()
      t.notMatch((await gw.get('/keyed', { x_tenant: 'other' })).header('cache-status'), /; hit/, 'and keyed')
    })

    t.test('stripHeaders adds fields that are never forwarded, in either spelling, unless the route keys on them', async (t) => {
      const origin = await startOrigin(t, reflecting())
      const gw = await gateway(t, kind, {
        config: {
          stripHeaders: ['X-Debug-User', 'x-real-ip'],
          routes: [{ path: '/keyed', origin: origin.url, key: { headers: ['x-debug-user', 'x-real-ip'] } }, { origin: origin.url }]
        }
      })
      await gw.get('/plain', { 'x-debug-user': 'admin', x_debug_user: 'admin', 'x-kept': 'yes' })
      t.equal(seenBy(origin, '/plain')['x-debug-user'], undefined)
      t.equal(seenBy(origin, '/plain').x_debug_user, undefined)
      t.equal(seenBy(origin, '/plain')['x-kept'], 'yes', 'other fields are forwarded')
      await gw.get('/keyed', { 'x-debug-user': 'admin', 'x-real-ip': '198.51.100.66' })
      t.match(seenBy(origin, '/keyed'), { 'x-debug-user': 'admin', 'x-real-ip': '198.51.100.66' }, 'a route that keys on a stripped field forwards it')
      await gw.settled()
      const other = await gw.get('/keyed', { 'x-debug-user': 'guest', 'x-real-ip': '198.51.100.66' })
      t.notMatch(other.header('cache-status'), /; hit/, 'each value has its own entry')
      t.match(JSON.parse(other.body), { 'x-debug-user': 'guest' })
    })

    t.test('X-Forwarded-For and Forwarded from a peer that is not a trusted proxy are replaced', async (t) => {
      const origin = await startOrigin(t, reflecting())
      for (const trustedProxies of [[], ['10.0.0.0/8', '::1/128']]) {
        const gw = await gateway(t, kind, { config: { trustedProxies, routes: [{ origin: origin.url }] } })
        const tag = trustedProxies.length === 0 ? 'none' : 'other'
        const headers = { 'x-forwarded-for': '198.51.100.66', forwarded: 'for=198.51.100.66' }
        await gw.get(`/xff-${tag}`, headers)
        await gw.request(`/xff-${tag}-post`, { method: 'POST', headers, body: 'x' })
        for (const path of [`/xff-${tag}`, `/xff-${tag}-post`]) {
          const seen = seenBy(origin, path)
          t.equal(seen['x-forwarded-for'], '127.0.0.1', `${path}: the peer's address only`)
          t.equal(seen.forwarded, undefined, `${path}: Forwarded is stripped`)
        }
      }
    })

    t.test('X-Forwarded-For and Forwarded from a trusted proxy are kept and extended with the peer', async (t) => {
      const origin = await startOrigin(t, reflecting())
      for (const trustedProxies of [['127.0.0.1'], ['127.0.0.0/8'], ['::ffff:127.0.0.1']]) {
        const gw = await gateway(t, kind, { config: { trustedProxies, routes: [{ origin: origin.url }] } })
        const tag = trustedProxies[0]?.replace(/[^0-9a-f]/g, '-') ?? ''
        const headers = { 'x-forwarded-for': '198.51.100.66, 203.0.113.7', forwarded: 'for=198.51.100.66' }
        await gw.get(`/t${tag}`, headers)
        await gw.request(`/t${tag}-post`, { method: 'POST', headers, body: 'x' })
        await gw.get(`/t${tag}-alone`)
        for (const path of [`/t${tag}`, `/t${tag}-post`]) {
          const seen = seenBy(origin, path)
          t.equal(seen['x-forwarded-for'], '198.51.100.66, 203.0.113.7, 127.0.0.1', `${path} (${tag}): the chain and then the peer`)
          t.equal(seen.forwarded, 'for=198.51.100.66, for=127.0.0.1', `${path} (${tag}): Forwarded kept and extended`)
        }
        t.equal(seenBy(origin, `/t${tag}-alone`)['x-forwarded-for'], '127.0.0.1')
        t.equal(seenBy(origin, `/t${tag}-alone`).forwarded, undefined, 'no Forwarded is made up')
      }
      // The trusted proxy's own Connection header can still take X-Forwarded-For away.
      const gw = await gateway(t, kind, { config: { trustedProxies: ['127.0.0.1'], routes: [{ origin: origin.url }] } })
      await rawGet(gw.url, '/hop-xff', { 'x-forwarded-for': '198.51.100.66', connection: 'x-forwarded-for' })
      t.equal(seenBy(origin, '/hop-xff')['x-forwarded-for'], '127.0.0.1')
    })

    t.test('Connection cannot make the answer without Accept-Language pass for a Vary: Accept-Language variant', async (t) => {
      const origin = await startOrigin(t, reflecting({ vary: 'Accept-Language' }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const attack = await rawGet(gw.url, '/vary', { 'accept-language': 'fr', connection: 'accept-language' })
      t.equal(JSON.parse(attack.body)['accept-language'], undefined, 'the origin did not get Accept-Language (RFC 9110 §7.6.1)')
      await gw.settled()
      const victim = await gw.get('/vary', { 'accept-language': 'fr' })
      t.equal(JSON.parse(victim.body)['accept-language'], 'fr', 'the French request gets the answer made for French')
      t.notMatch(victim.header('cache-status'), /; hit/)
      await gw.settled()
      const again = await gw.get('/vary', { 'accept-language': 'fr' })
      t.match(again.header('cache-status'), /; hit/)
      t.equal(JSON.parse(again.body)['accept-language'], 'fr')
      const none = await gw.get('/vary')
      t.match(none.header('cache-status'), /; hit/, 'the attacker\'s answer is the one for no Accept-Language, which it is')
      t.equal(JSON.parse(none.body)['accept-language'], undefined)
      // Once the variant exists, the same trick selects the no-language variant, not the French one.
      const replay = await rawGet(gw.url, '/vary', { 'accept-language': 'fr', connection: 'accept-language' })
      t.equal(JSON.parse(replay.body)['accept-language'], undefined)
      t.equal(origin.count('/vary'), 2)
    })

    t.test('a request whose Connection removes a Vary field does not join a fetch made with it, nor lend it its own', async (t) => {
      let release: () => void = () => undefined
      const held = new Promise<void>((resolve) => { release = resolve })
      let arrived: () => void = () => undefined
      const attackerArrived = new Promise<void>((resolve) => { arrived = resolve })
      const origin = await startOrigin(t, async (req, res) => {
        const body = JSON.stringify(req.headers)
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'public, max-age=600', vary: 'Accept-Language' })
        if (req.url === '/burst' && req.headers['x-attacker'] === '1') {
          // Headers now, body later: the gateway's flight is open and joinable meanwhile.
          res.flushHeaders()
          arrived()
          await held
        }
        res.end(body)
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      await gw.get('/burst', { 'accept-language': 'en' }) // the URL's Vary record exists
      await gw.settled()
      const attack = rawGet(gw.url, '/burst', { 'accept-language': 'fr', connection: 'accept-language', 'x-attacker': '1' })
      await attackerArrived
      const victim = await undiciRequest(`${gw.url}/burst`, { headers: { 'accept-language': 'fr' } })
      release()
      const victimBody = JSON.parse(await victim.body.text()) as IncomingHttpHeaders
      t.equal(victimBody['accept-language'], 'fr', 'the French request got an answer made for French')
      t.equal(JSON.parse((await attack).body)['accept-language'], undefined)
      await gw.settled()
      const later = await gw.get('/burst', { 'accept-language': 'fr' })
      t.equal(JSON.parse(later.body)['accept-language'], 'fr', 'and so does the next one')
    })

    t.test('Connection cannot store the answer without a route key header or key cookie under its value', async (t) => {
      const origin = await startOrigin(t, reflecting())
      const gw = await gateway(t, kind, {
        config: {
          routes: [
            { path: '/tenant', origin: origin.url, key: { headers: ['x-tenant'] } },
            { path: '/shop', origin: origin.url, key: { cookies: ['currency'] } },
            { origin: origin.url }
          ]
        }
      })
      const headerAttack = await rawGet(gw.url, '/tenant/home', { 'x-tenant': 'acme', connection: 'x-tenant' })
      t.equal(JSON.parse(headerAttack.body)['x-tenant'], undefined)
      const cookieAttack = await rawGet(gw.url, '/shop/cart', { cookie: 'currency=eur', connection: 'cookie' })
      t.equal(JSON.parse(cookieAttack.body).cookie, undefined)
      await gw.settled()
      const tenant = await gw.get('/tenant/home', { 'x-tenant': 'acme' })
      t.equal(JSON.parse(tenant.body)['x-tenant'], 'acme', 'the acme request gets the answer made for acme')
      const shop = await gw.get('/shop/cart', { cookie: 'currency=eur' })
      t.equal(JSON.parse(shop.body).cookie, 'currency=eur', 'the euro request gets the answer made for euros')
      await gw.settled()
      t.equal(JSON.parse((await gw.get('/tenant/home', { 'x-tenant': 'acme' })).body)['x-tenant'], 'acme')
      t.equal(JSON.parse((await gw.get('/shop/cart', { cookie: 'currency=eur' })).body).cookie, 'currency=eur')
    })

    t.test('a Connection header naming fields changes nothing for a URL without variants, fast path or full path', async (t) => {
      const origin = await startOrigin(t, reflecting())
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const first = await gw.get('/novary', { 'accept-language': 'fr' })
      await gw.settled()
      const again = await rawGet(gw.url, '/novary', { 'accept-language': 'de', connection: 'accept-language, x-anything' })
      t.match(again.headers['cache-status'], /; hit/, 'the origin said the answer does not vary')
      t.equal(again.body, first.body)
      t.equal(origin.count('/novary'), 1)
    })
  })
}

behaviours('memory')
behaviours('redis')
