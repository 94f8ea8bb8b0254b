/**
 * Operator experience on the admin listener and in the logs: precise statuses for purges sent
 * the wrong way, /explain refusing relative URLs, query secrets kept out of request log lines
 * and /explain, and one log line per request in a terminal.
 */
import t, { type Test } from 'tap'
import { request } from 'undici'
import { withGateway, type GatewayHandle } from '../helpers/gateway.ts'
import { json, startOrigin } from '../helpers/origin.ts'

const TOKEN = 'operator-experience-token-0123'
const auth = { authorization: `Bearer ${TOKEN}` }

async function setup (t: Test, extra: Record<string, unknown> = {}): Promise<GatewayHandle> {
  const origin = await startOrigin(t, json({ v: 1 }, { 'cache-control': 'max-age=60' }))
  return await withGateway(t, { config: { admin: { token: TOKEN }, routes: [{ name: 'api', origin: origin.url }], ...extra } })
}

async function admin (gw: GatewayHandle, path: string, o: { method?: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'HEAD', headers?: Record<string, string>, body?: string } = {}): Promise<{ status: number, headers: Record<string, unknown>, body: Record<string, unknown> }> {
  const res = await request(gw.adminUrl + path, { method: o.method ?? 'GET', headers: o.headers ?? {}, ...(o.body !== undefined ? { body: o.body } : {}) })
  const text = await res.body.text()
  return { status: res.statusCode, headers: res.headers, body: text === '' ? {} : JSON.parse(text) as Record<string, unknown> }
}

t.test('POST /purge with a body that is not declared JSON is a 415 with its catalogue code', async (t) => {
  const gw = await setup(t)
  const body = JSON.stringify({ all: true })
  const none = await admin(gw, '/purge', { method: 'POST', headers: auth, body })
  t.equal(none.status, 415, 'no content-type')
  t.match(none.body, { statusCode: 415, code: 'CG_ERR_UNSUPPORTED_MEDIA_TYPE', message: /application\/json/ })
  const form = await admin(gw, '/purge', { method: 'POST', headers: { ...auth, 'content-type': 'application/x-www-form-urlencoded' }, body: 'all=true' })
  t.equal(form.status, 415, 'a form body')
  t.match(form.body, { code: 'CG_ERR_UNSUPPORTED_MEDIA_TYPE' })
  const anonymous = await admin(gw, '/purge', { method: 'POST', headers: { 'content-type': 'text/plain' }, body })
  t.equal(anonymous.status, 401, 'the token is still asked for first')
  const ok = await admin(gw, '/purge', { method: 'POST', headers: { ...auth, 'content-type': 'application/json; charset=utf-8' }, body })
  t.equal(ok.status, 200, 'JSON with parameters is accepted')
})

t.test('GET, PUT and DELETE /purge are 405 with Allow: POST, not 404', async (t) => {
  const gw = await setup(t)
  for (const method of ['GET', 'PUT', 'DELETE'] as const) {
    const res = await admin(gw, '/purge', { method, headers: auth })
    t.equal(res.status, 405, method)
    t.equal(res.headers.allow, 'POST', `${method}: Allow names POST`)
    t.match(res.body, { code: 'CG_ERR_METHOD_NOT_ALLOWED', message: /POST \/purge/ })
  }
})

t.test('/explain with a relative or non-http URL is a 400 that says what to give', async (t) => {
  const gw = await setup(t)
  for (const url of ['/relative', 'relative/path', 'ftp://files.example/a', '//host/path']) {
    const res = await admin(gw, `/explain?url=${encodeURIComponent(url)}`, { headers: auth })
    t.equal(res.status, 400, url)
    t.match(res.body, { code: 'CG_ERR_BAD_REQUEST', message: /absolute http\(s\) URL/ })
  }
  const good = await admin(gw, `/explain?url=${encodeURIComponent('http://a.example/x')}`, { headers: auth })
  t.equal(good.status, 200)
})
