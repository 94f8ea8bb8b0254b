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

interface Line { msg: string, url?: string }
const requestLines = (gw: GatewayHandle): Line[] => gw.logLines.map((l) => JSON.parse(l) as Line).filter((l) => l.msg === 'request')

t.test('query parameters named like secrets are redacted in request log lines, whatever their case', async (t) => {
  const gw = await setup(t)
  await gw.get('/items?page=2&token=tok-s3cret&API_KEY=key-s3cret&Signature=sig-s3cret')
  await gw.get('/nowhere%zz?password=pw-s3cret')
  await gw.request('/items?auth=auth-s3cret', { method: 'POST', body: '{}' })
  await gw.settled()
  const lines = requestLines(gw)
  t.equal(lines.length, 3)
  t.match(lines[0]?.url, /page=2/, 'other parameters are kept')
  t.match(lines[0]?.url, /token=REDACTED/)
  t.match(lines[0]?.url, /API_KEY=REDACTED/)
  for (const line of gw.logLines) t.notMatch(line, /s3cret/, 'no secret value in any line')
})

t.test('redactQueryParams replaces the default list', async (t) => {
  const gw = await setup(t, { redactQueryParams: ['session', 'x-amz-*'] })
  await gw.get('/items?session=sess-s3cret&X-Amz-Credential=cred-s3cret&token=visible-token')
  await gw.settled()
  const line = requestLines(gw)[0]?.url ?? ''
  t.match(line, /session=REDACTED/)
  t.match(line, /X-Amz-Credential=REDACTED/)
  t.match(line, /token=visible-token/, 'token is no longer in the list')
})

t.test('/explain shows the URL and the key with query secrets redacted', async (t) => {
  const gw = await setup(t)
  const url = `${gw.url}/items?token=tok-s3cret&page=1`
  await gw.get('/items?token=tok-s3cret&page=1')
  await gw.settled()
  const res = await admin(gw, `/explain?url=${encodeURIComponent(url)}`, { headers: auth })
  t.equal(res.status, 200)
  t.notMatch(JSON.stringify(res.body), /s3cret/)
  t.match(res.body, { url: /token=REDACTED/, key: /token=REDACTED/, route: { name: 'api' } })
  t.ok(Array.isArray(res.body.variants) && res.body.variants.length === 1, 'the stored entry is still found under its real key')
  const none = await admin(gw, `/explain?url=${encodeURIComponent('http://unrouted.example.invalid/x?sig=sig-s3cret')}`, { headers: auth })
  t.notMatch(JSON.stringify(none.body), /s3cret/, 'nor in a no-route message')
})
