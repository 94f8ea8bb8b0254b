// Logs: one JSON line per request, built from the same outcome as Cache-Status; credentials
// never reach a log line.
import t from 'tap'
import type { Test } from 'tap'
import { startOrigin, json } from '../helpers/origin.ts'
import { withGateway, type GatewayHandle, type GatewayOptions } from '../helpers/gateway.ts'
import { startRedis } from '../helpers/redis.ts'

type StoreKind = 'memory' | 'redis'

const redis = await startRedis(t)
let prefixes = 0

/** A gateway on the named store; on Redis each gateway gets its own key prefix. */
async function gateway (t: Test, kind: StoreKind, options: GatewayOptions): Promise<GatewayHandle> {
  if (kind === 'memory') return await withGateway(t, options)
  return await withGateway(t, { ...options, config: { ...options.config, redis: { url: redis.url, keyPrefix: `logs${++prefixes}:` } } })
}

interface RequestLine {
  msg: string
  route?: string
  method: string
  url: string
  outcome: string
  status: number
  cacheStatus?: string
}

function requestLines (gw: GatewayHandle): RequestLine[] {
  return gw.logLines.map((l) => JSON.parse(l) as RequestLine).filter((l) => l.msg === 'request')
}

function behaviours (kind: StoreKind): void {
  t.test(`on the ${kind} store`, async (t) => {
    t.test('each request writes one JSON line with route, outcome, status and Cache-Status', async (t) => {
      const origin = await startOrigin(t, json({ v: 1 }, { 'cache-control': 'max-age=60' }))
      const gw = await gateway(t, kind, { config: { routes: [{ name: 'products', path: '/products', origin: origin.url }, { name: 'private', path: '/me', origin: origin.url, enabled: false }] } })
      const replies = [await gw.get('/products/1')]
      await gw.settled()
      replies.push(await gw.get('/products/1'))
      replies.push(await gw.get('/me'))
      replies.push(await gw.get('/nowhere'))
      replies.push(await gw.request('/products/1', { method: 'POST', body: '{}' }))
      for (const line of gw.logLines) t.doesNotThrow(() => { JSON.parse(line) }, 'every line is JSON')
      const lines = requestLines(gw)
      t.equal(lines.length, 5, 'one line per request')
      t.match(lines, [
        { route: 'products', method: 'GET', outcome: 'miss', status: 200 },
        { route: 'products', method: 'GET', outcome: 'hit', status: 200 },
        { route: 'private', method: 'GET', outcome: 'pass', status: 200 },
        { method: 'GET', outcome: 'error', status: 404 },
        { route: 'products', method: 'POST', outcome: 'pass', status: 200 }
      ])
      lines.forEach((line, i) => t.equal(line.cacheStatus, replies[i]?.header('cache-status'), `line ${i} has the Cache-Status the client got`))
      t.equal(lines[0]?.url, `${gw.url}/products/1`, 'the url is the normalized key')
    })

    t.test('Authorization, Cookie and Set-Cookie values never appear in a log line', async (t) => {
      const origin = await startOrigin(t, json({ v: 1 }, { 'cache-control': 'private', 'set-cookie': 'sid=s3cret-set-cookie' }))
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const secrets = { authorization: 'Bearer s3cret-token', cookie: 'session=s3cret-cookie' }
      await gw.get('/account?x=1', secrets)
      await gw.request('/account', { method: 'POST', headers: secrets, body: '{}' })
      await gw.get('/nowhere%zz', secrets)
      await gw.settled()
      t.ok(requestLines(gw).length >= 2)
      for (const line of gw.logLines) t.notMatch(line, /s3cret/, 'no secret in the line')
    })
  })
}

behaviours('memory')
behaviours('redis')
