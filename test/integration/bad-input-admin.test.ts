/**
 * The admin surface under hostile use: hammered (rate limited), called without a token or
 * with a wrong one (never open, never echoing it), and where it listens by default.
 */
import t from 'tap'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { loadConfig, parseConfig } from '../../src/config/load.ts'
import { createGateway } from '../../src/gateway.ts'
import { createLogger } from '../../src/observability/logger.ts'
import { withGateway, type GatewayHandle } from '../helpers/gateway.ts'
import { startOrigin } from '../helpers/origin.ts'
import { Writable } from 'node:stream'
import type { Dispatcher } from 'undici'

/** The token-protected admin endpoints, as [method, path]; each is checked if this build has it. */
const PROTECTED: Array<[Dispatcher.HttpMethod, string]> = [
  ['POST', '/purge'],
  ['POST', '/reload'],
  ['GET', '/explain?url=http%3A%2F%2Fshop.test%2F']
]

async function admin (gw: GatewayHandle, method: Dispatcher.HttpMethod, path: string, headers: Record<string, string> = {}): Promise<{ status: number, body: string, code: string | undefined }> {
  const res = await request(gw.adminUrl + path, {
    method,
    headers: { ...(method === 'POST' ? { 'content-type': 'application/json' } : {}), ...headers },
    ...(method === 'POST' ? { body: '{"urls":["http://shop.test/"]}' } : {})
  })
  const body = await res.body.text()
  let code: string | undefined
  try {
    code = (JSON.parse(body) as { code?: string }).code
  } catch {}
  return { status: res.statusCode, body, code }
}

function present (gw: GatewayHandle): Array<[Dispatcher.HttpMethod, string]> {
  return PROTECTED.filter(([method, path]) => gw.gateway.admin.hasRoute({ method, url: path.split('?')[0] ?? path }))
}

t.test('a hammered admin endpoint answers 429 CG_ERR_RATE_LIMITED, while health probes stay open', async (t) => {
  const origin = await startOrigin(t, (_req, res) => { res.end('ok') })
  const gw = await withGateway(t, { config: { admin: { token: 'right-token' }, routes: [{ origin: origin.url }] } })
  const replies = []
  for (let i = 0; i < 60; i++) replies.push(await admin(gw, 'POST', '/purge', { authorization: 'Bearer wrong-token' }))
  const limited = replies.filter((r) => r.status === 429)
  t.ok(limited.length >= 10, `${limited.length} of 60 rapid requests were refused`)
  t.ok(replies.slice(0, 20).every((r) => r.status !== 429), 'a burst of 20 is allowed first')
  t.ok(limited.every((r) => r.code === 'CG_ERR_RATE_LIMITED'), 'with the catalogue error')
  t.equal((await admin(gw, 'POST', '/purge', { authorization: 'Bearer right-token' })).status, 429, 'the right token waits its turn too')
  t.equal((await admin(gw, 'GET', '/no-such-endpoint')).status, 429, 'unknown endpoints count as well')
  t.equal((await admin(gw, 'GET', '/healthz')).status, 200, 'liveness is never rate limited')
  t.not((await admin(gw, 'GET', '/readyz')).status, 429, 'nor is readiness')
  gw.clock.advance(1000)
  t.not((await admin(gw, 'GET', '/no-such-endpoint')).status, 429, 'a second later requests are let through again')
})

t.test('protected admin endpoints are never open without a token', async (t) => {
  const origin = await startOrigin(t, (_req, res) => { res.end('ok') })
  const open = await withGateway(t, { config: { routes: [{ origin: origin.url }] } })
  const endpoints = present(open)
  t.ok(endpoints.length > 0, `protected endpoints in this build: ${endpoints.map(([m, p]) => `${m} ${p.split('?')[0] ?? ''}`).join(', ')}`)
  for (const [method, path] of endpoints) {
    for (const headers of [{}, { authorization: 'Bearer anything' }, { authorization: 'Bearer ' }, { 'x-cachegate-signature': 'sha256=00' }]) {
      const r = await admin(open, method, path, headers)
      t.equal(r.status, 503, `${method} ${path} with ${JSON.stringify(headers)} and no token configured: 503`)
      t.equal(r.code, 'CG_ERR_ADMIN_DISABLED')
    }
  }

  const guarded = await withGateway(t, { config: { admin: { token: 'right-token' }, routes: [{ origin: origin.url }] } })
  for (const [method, path] of present(guarded)) {
    t.equal((await admin(guarded, method, path)).code, 'CG_ERR_ADMIN_UNAUTHORIZED', `${method} ${path}: no token is a 401`)
    t.equal((await admin(guarded, method, path, { authorization: 'Basic cmlnaHQtdG9rZW4=' })).code, 'CG_ERR_ADMIN_UNAUTHORIZED', `${method} ${path}: another scheme is a 401`)
    t.equal((await admin(guarded, method, path, { authorization: 'Bearer right-tokenX' })).code, 'CG_ERR_ADMIN_FORBIDDEN', `${method} ${path}: a wrong token is a 403`)
    t.equal((await admin(guarded, method, path, { authorization: 'Bearer right-toke' })).code, 'CG_ERR_ADMIN_FORBIDDEN', `${method} ${path}: a prefix of the token is a 403`)
    t.equal((await admin(guarded, method, path, { 'x-cachegate-signature': 'sha256=00' })).status, 401, `${method} ${path}: a signature with no webhook secret configured opens nothing`)
    guarded.clock.advance(1000)
  }
})

t.test('a wrong token, the right one and client credentials never appear in logs or answers', async (t) => {
  const origin = await startOrigin(t, (_req, res) => { res.end('ok') })
  const gw = await withGateway(t, { config: { admin: { token: 'the-real-admin-token' }, routes: [{ origin: origin.url }] } })
  const bodies: string[] = []
  for (const [method, path] of present(gw)) {
    bodies.push((await admin(gw, method, path, { authorization: 'Bearer guessed-token-1234' })).body)
    bodies.push((await admin(gw, method, path, { authorization: 'Bearer the-real-admin-token' })).body)
  }
  await gw.get('/page?x=1', { authorization: 'Bearer user-credential-5678', cookie: 'session=user-session-9012' })
  await gw.settled()
  const logs = gw.logLines.join('\n')
  t.ok(gw.logLines.length > 0, 'something was logged')
  for (const secret of ['guessed-token-1234', 'the-real-admin-token', 'user-credential-5678', 'user-session-9012']) {
    t.notOk(logs.includes(secret), `"${secret}" is not in the logs`)
    t.notOk(bodies.some((b) => b.includes(secret)), `"${secret}" is not echoed in an answer`)
  }
})

t.test('the admin listener binds to loopback unless told otherwise', async (t) => {
  const shipped = await loadConfig(fileURLToPath(new URL('../../routes.yaml', import.meta.url)), {})
  t.equal(shipped.admin.host, '127.0.0.1', 'the shipped routes.yaml')
  const config = parseConfig(JSON.stringify({ listen: { host: '127.0.0.1', port: 0 }, admin: { port: 0 }, routes: [{ origin: 'http://127.0.0.1:9' }] }), 'test.yaml', {})
  t.equal(config.admin.host, '127.0.0.1', 'the default when admin.host is not set')
  const gateway = await createGateway({ config, logger: createLogger({ level: 'fatal', pretty: false, destination: new Writable({ write: (_c, _e, done) => done() }) }) })
  t.teardown(async () => await gateway.close())
  await gateway.listen()
  const address = gateway.admin.server.address()
  t.equal(typeof address === 'object' && address !== null ? address.address : address, '127.0.0.1', 'and where it actually listens')
})
