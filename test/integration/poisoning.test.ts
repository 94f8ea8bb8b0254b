/**
 * Cache poisoning and deception: an attacker's request must never leave behind an entry that
 * another client is then served. Each test plays the attacker's request first and the
 * victim's plain request after, against an origin that (like many real ones) builds its
 * answer from headers it should not trust, and checks what the victim got and what the store
 * holds.
 */
import t from 'tap'
import type { Test } from 'tap'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { normalizeRequestUrl } from '../../src/cache/key.ts'
import { UNKEYED_HEADERS } from '../../src/http/forwarding.ts'
import { withGateway, type GatewayHandle, type GatewayOptions } from '../helpers/gateway.ts'
import { startOrigin } from '../helpers/origin.ts'
import { startRedis } from '../helpers/redis.ts'

type StoreKind = 'memory' | 'redis'

const redis = await startRedis(t)
let prefixes = 0

async function gateway (t: Test, kind: StoreKind, options: GatewayOptions): Promise<GatewayHandle> {
  if (kind === 'memory') return await withGateway(t, options)
  return await withGateway(t, { ...options, config: { ...options.config, redis: { url: redis.url, keyPrefix: `poison${++prefixes}:` } } })
}

const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

/**
 * A naive origin: it builds its links from X-Forwarded-Host, honours method overrides and
 * rewrite headers, and echoes every such header it received. Cacheable for ten minutes.
 */
function naiveOrigin (extra: Record<string, string> = {}) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const h = req.headers
    const echoed = Object.fromEntries(UNKEYED_HEADERS.filter((n) => h[n] !== undefined && n !== 'x-forwarded-host').map((n) => [n, h[n]]))
    const body = JSON.stringify({
      link: `http://${String(h['x-forwarded-host'] ?? h.host)}${req.url ?? ''}`,
      method: String(h['x-http-method-override'] ?? req.method),
      path: String(h['x-original-url'] ?? h['x-rewrite-url'] ?? req.url),
      echoed
    })
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'public, max-age=600', ...extra })
    res.end(body)
  }
}

function keyOf (gw: GatewayHandle, target: string, host = new URL(gw.url).host): string {
  const n = normalizeRequestUrl({ scheme: 'http', host, target })
  if (!n.ok) throw new Error(n.reason)
  return n.key
}

async function stored (gw: GatewayHandle, target: string, host?: string): Promise<string | null> {
  const { entry } = await gw.gateway.store.lookup(keyOf(gw, target, host) as Parameters<GatewayHandle['gateway']['store']['lookup']>[0])
  return entry === null ? null : entry.body.toString()
}

const ATTACK: Record<string, string> = {
  'x-forwarded-host': 'evil.test',
  'x-original-url': '/admin/evil',
  'x-rewrite-url': '/admin/evil',
  'x-http-method-override': 'DELETE-evil',
  forwarded: 'host=evil.test;proto=https',
  'x-forwarded-scheme': 'evil',
  'x-forwarded-port': '6666',
  'x-host': 'evil.test',
  'x-forwarded-prefix': '/evil',
  'x-forwarded-server': 'evil.test',
  'x-original-host': 'evil.test',
  'x-http-method': 'DELETE-evil',
  'x-method-override': 'DELETE-evil',
  'x-forwarded-ssl': 'evil',
  'front-end-https': 'evil',
  'x-url-scheme': 'evil',
  'x-forwarded-path': '/evil',
  'x-real-ip': 'evil',
  'true-client-ip': 'evil',
  'x-original-path': '/evil',
  'x-override-url': '/evil'
}

function behaviours (kind: StoreKind): void {
  t.test(`on the ${kind} store`, async (t) => {
    t.test('every header that changes the origin\'s answer without being keyed is stripped before forwarding', async (t) => {
      t.same(Object.keys(ATTACK).sort(), [...UNKEYED_HEADERS].sort(), 'the attack covers every unkeyed header')
      const origin = await startOrigin(t, naiveOrigin())
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const plain = await gw.get('/page-before')
      for (const [name, value] of Object.entries(ATTACK)) {
        const path = `/page-${name}`
        const attack = await gw.get(path, { [name]: value })
        t.notMatch(attack.body, /evil/, `${name}: the origin never saw it`)
        const seen = origin.requests.find((r) => r.url === path)?.headers[name]
        t.ok(seen === undefined || (name === 'x-forwarded-host' && seen === new URL(gw.url).host), `${name}: not forwarded (the gateway sets X-Forwarded-Host itself)`)
        await gw.settled()
        const victim = await gw.get(path)
        t.match(victim.header('cache-status'), /; hit/, `${name}: the victim is served from the cache`)
        t.equal(victim.body, attack.body, `${name}: with the origin's plain answer`)
        t.notMatch(await stored(gw, path), /evil/, `${name}: the store holds no trace of it`)
      }
      t.equal(JSON.parse(plain.body).method, 'GET')
    })

    t.test('a route that keys on X-Forwarded-Host forwards it and keeps each value in its own entry', async (t) => {
      const origin = await startOrigin(t, naiveOrigin())
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, key: { headers: ['x-forwarded-host'] } }] } })
      const attack = await gw.get('/home', { 'x-forwarded-host': 'evil.test' })
      t.equal(JSON.parse(attack.body).link, 'http://evil.test/home', 'the keyed header reaches the origin')
      await gw.settled()
      const victim = await gw.get('/home')
      t.notMatch(victim.body, /evil/, 'a request without it gets its own answer')
      t.notMatch(victim.header('cache-status'), /; hit/)
      await gw.settled()
      t.match((await gw.get('/home', { 'x-forwarded-host': 'evil.test' })).header('cache-status'), /; hit/, 'the attacker only poisons its own variant')
      t.notMatch((await gw.get('/home')).body, /evil/)
    })

    t.test('a request with another Host is stored under that host, never served for this one', async (t) => {
      const origin = await startOrigin(t, naiveOrigin())
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const attack = await gw.get('/home', { host: 'evil.test' })
      t.match(attack.body, /evil\.test/)
      await gw.settled()
      const victim = await gw.get('/home')
      t.notMatch(victim.body, /evil/)
      t.notMatch(victim.header('cache-status'), /; hit/)
      t.match(await stored(gw, '/home', 'evil.test'), /evil\.test/, 'the attacker\'s entry is keyed by its own host')
    })

    t.test('what is stored is the origin\'s answer for the normalized request, the same one that was forwarded', async (t) => {
      const origin = await startOrigin(t, naiveOrigin())
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, key: { ignoreQuery: ['utm_*'] } }] } })
      const rows: Array<[string, string, string]> = [
        ['dot segments', '/a/../b/c?y=2&x=1', '/b/c?x=1&y=2'],
        ['escaped dot segments', '/a/%2e%2E/b/c2', '/b/c2'],
        ['mixed-case escapes of unreserved characters', '/%7e%7Euser', '/~~user'],
        ['escapes that must stay escaped get upper-case hex', '/a%2fb', '/a%2Fb'],
        ['ignored query parameters', '/p?utm_source=%3Cscript%3E&id=1&utm_medium=x', '/p?id=1'],
        ['empty query pairs', '/q?&&a=1&&', '/q?a=1']
      ]
      for (const [name, target, forwarded] of rows) {
        const before = origin.count(forwarded)
        const first = await gw.get(target)
        t.equal(origin.count(forwarded) - before, 1, `${name}: the origin was asked for ${forwarded}`)
        t.equal(JSON.parse(first.body).path, forwarded, `${name}: and answered for it`)
        await gw.settled()
        t.equal(await stored(gw, forwarded), first.body, `${name}: stored under the key of ${forwarded}`)
        const direct = await gw.get(forwarded)
        t.match(direct.header('cache-status'), /; hit/, `${name}: the plain spelling is a hit`)
        t.equal(direct.body, first.body)
      }
      t.notOk(origin.requests.some((r) => /utm_|script/i.test(r.url)), 'ignored parameters never reach the origin')
    })

    t.test('spellings that name different resources never share an entry', async (t) => {
      const origin = await startOrigin(t, naiveOrigin())
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const pairs: Array<[string, string]> = [
        ['//b', '/b'],
        ['/a%2Fb', '/a/b'],
        ['/x?a=1&a=2', '/x?a=2&a=1'],
        ['/x?a', '/x?a='],
        ['/Case', '/case'],
        ['/q?s=a+b', '/q?s=a%20b']
      ]
      for (const [a, b] of pairs) {
        const first = await gw.get(a)
        await gw.settled()
        const second = await gw.get(b)
        t.notMatch(second.header('cache-status'), /; hit/, `${b} is not served ${a}'s entry`)
        t.not(JSON.parse(second.body).path, JSON.parse(first.body).path, `${a} and ${b} reached the origin as different requests`)
      }
      t.ok(origin.requests.some((r) => r.url === '//b'), 'an empty segment is forwarded as is')
    })

    t.test('one user\'s Set-Cookie is never given to another, one after the other or at the same time', async (t) => {
      let n = 0
      const origin = await startOrigin(t, async (_req, res) => {
        const id = ++n
        await sleep(50)
        res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'public, max-age=600', 'set-cookie': `sid=${id}; HttpOnly`, 'content-length': String(`session ${id}`.length) })
        res.end(`session ${id}`)
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const alice = await gw.get('/login')
      const bob = await gw.get('/login')
      t.not(bob.header('set-cookie'), alice.header('set-cookie'), 'the second client got its own cookie')
      t.match(alice.header('cache-status'), /detail=set-cookie/)
      const together = await Promise.all(Array.from({ length: 6 }, async () => await gw.get('/login-burst')))
      const cookies = together.map((r) => r.header('set-cookie'))
      t.equal(new Set(cookies).size, 6, 'six concurrent clients, six different cookies: none was handed another\'s response')
      t.ok(together.every((r) => r.body === `session ${/sid=(\d+)/.exec(r.header('set-cookie') ?? '')?.[1] ?? ''}`), 'each body matches its own cookie')
      await gw.settled()
      t.equal(await stored(gw, '/login'), null)
      t.equal(await stored(gw, '/login-burst'), null)
    })

    t.test('a private response is never given to another user, even when they ask at the same time', async (t) => {
      const origin = await startOrigin(t, async (req, res) => {
        await sleep(50)
        const user = /user=(\w+)/.exec(String(req.headers.cookie))?.[1] ?? 'anonymous'
        res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'private, max-age=600', 'content-length': String(`account of ${user}`.length) })
        res.end(`account of ${user}`)
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const users = ['alice', 'bob', 'carol', 'dave']
      const replies = await Promise.all(users.map(async (u) => await gw.get('/account', { cookie: `user=${u}` })))
      replies.forEach((r, i) => t.equal(r.body, `account of ${users[i] ?? ''}`, `${users[i] ?? ''} got their own account`))
      await gw.settled()
      t.equal((await gw.get('/account')).body, 'account of anonymous', 'a later anonymous request is not served anyone\'s')
      t.equal(await stored(gw, '/account'), null)
    })

    t.test('a response to a request with credentials is not given to another user', async (t) => {
      const origin = await startOrigin(t, async (req, res) => {
        await sleep(50)
        const user = /Bearer (\w+)/.exec(String(req.headers.authorization))?.[1] ?? 'anonymous'
        // max-age without public: RFC 9111 §3.5 forbids storing a response to an authorized request.
        res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=600', 'content-length': String(`data of ${user}`.length) })
        res.end(`data of ${user}`)
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const [alice, anonymous, bob] = await Promise.all([
        gw.get('/me', { authorization: 'Bearer alice' }),
        gw.get('/me'),
        gw.get('/me', { authorization: 'Bearer bob' })
      ])
      t.equal(alice?.body, 'data of alice')
      t.equal(anonymous?.body, 'data of anonymous', 'an anonymous request at the same time is not given alice\'s')
      t.equal(bob?.body, 'data of bob')
      await gw.settled()
      t.equal((await gw.get('/me')).body, 'data of anonymous')
      const eve = await gw.get('/me', { authorization: 'Bearer eve' })
      t.equal(eve.body, 'data of eve', 'nor is a later user given the anonymous entry (which the origin did not mark public)')
      t.match(eve.header('cache-status'), /fwd=request; fwd-status=200; detail=authorization/)
    })

    t.test('a response that varies on Cookie is stored per cookie', async (t) => {
      const origin = await startOrigin(t, (req, res) => {
        const body = `hello ${/user=(\w+)/.exec(String(req.headers.cookie))?.[1] ?? 'stranger'}`
        res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'public, max-age=600', vary: 'Cookie', 'content-length': Buffer.byteLength(body) })
        res.end(body)
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      t.equal((await gw.get('/greet', { cookie: 'user=alice' })).body, 'hello alice')
      await gw.settled()
      t.equal((await gw.get('/greet', { cookie: 'user=bob' })).body, 'hello bob')
      t.equal((await gw.get('/greet')).body, 'hello stranger')
      await gw.settled()
      t.match((await gw.get('/greet', { cookie: 'user=alice' })).header('cache-status'), /; hit/)
    })

    t.test('storeContentTypes keeps a page the route does not expect out of the cache (web cache deception)', async (t) => {
      const origin = await startOrigin(t, (req, res) => {
        // A framework that ignores the suffix: /account/settings.css is the HTML account page.
        const json = req.url?.startsWith('/api/') === true
        const body = json ? '{"public":true}' : '<html>account of alice: card 4111</html>'
        res.writeHead(200, { 'content-type': json ? 'application/json' : 'text/html', 'cache-control': 'public, max-age=600', 'content-length': Buffer.byteLength(body) })
        res.end(body)
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, storeContentTypes: ['application/json'] }] } })
      const lure = await gw.get('/account/settings.css')
      t.match(lure.header('cache-status'), /detail=content-type/)
      await gw.settled()
      t.equal(await stored(gw, '/account/settings.css'), null, 'the HTML page was not stored')
      await gw.get('/account/settings.css')
      t.equal(origin.count('/account/settings.css'), 2, 'the attacker\'s follow-up request went to the origin, not the cache')
      await gw.get('/api/items')
      await gw.settled()
      t.equal(await stored(gw, '/api/items'), '{"public":true}', 'an expected content type is stored')
    })

    t.test('HEAD, Range and conditional requests on a miss store the whole response, not what they were answered', async (t) => {
      const body = 'the complete representation'
      const origin = await startOrigin(t, (req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'public, max-age=600', etag: '"v1"', 'content-length': Buffer.byteLength(body) })
        res.end(req.method === 'HEAD' ? undefined : body)
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      await gw.request('/head-first', { method: 'HEAD' })
      await gw.get('/range-first', { range: 'bytes=0-2' })
      await gw.get('/conditional-first', { 'if-none-match': '"v1"' })
      await gw.settled()
      for (const path of ['/head-first', '/range-first', '/conditional-first']) {
        t.equal(await stored(gw, path), body, `${path}: the whole body was stored`)
        const full = await gw.get(path)
        t.equal(full.status, 200)
        t.equal(full.body, body, `${path}: a later plain GET gets all of it`)
      }
      t.notOk(origin.requests.some((r) => r.headers.range !== undefined || r.headers['if-range'] !== undefined), 'a client range is never forwarded on a fetch meant for the cache')
      // A client's validators are forwarded on a miss (RFC 9111 §4.3.2); a 304 then answers that
      // client only and is never stored (test/integration/conditional-miss.test.ts).
      t.equal(origin.requests.find((r) => r.url === '/conditional-first')?.headers['if-none-match'], '"v1"')
    })
  })
}

behaviours('memory')
behaviours('redis')
