/**
 * Bad input on the public listener, sent over raw sockets so nothing cleans it up first:
 * malformed request lines and URLs, invalid percent-encoding, absurd queries, oversized
 * headers and bodies, unknown methods, missing or extra Host fields, hosts no route serves.
 * Each gets a clear 4xx in the error catalogue's JSON shape: never a 5xx, never a crash.
 */
import t from 'tap'
import type { Test } from 'tap'
import net from 'node:net'
import fc from 'fast-check'
import { withGateway, type GatewayHandle } from '../helpers/gateway.ts'
import { startOrigin, type Origin } from '../helpers/origin.ts'

interface RawReply {
  status: number
  headers: Record<string, string>
  body: string
  /** Everything received (empty when the gateway closed without answering). */
  raw: string
}

/**
 * Writes bytes on a fresh connection and reads one response (1xx interim answers skipped).
 * A request the gateway waits on for more bytes is half-closed after `idleMs`; `raw` is empty
 * when the gateway closed without answering.
 */
async function rawRequest (gw: GatewayHandle, bytes: string | Buffer, idleMs = 1000): Promise<RawReply> {
  const { port } = new URL(gw.url)
  return await new Promise((resolve) => {
    const socket = net.connect(Number(port), '127.0.0.1')
    let raw = ''
    let done = false
    const finish = (): void => {
      if (done) return
      done = true
      clearTimeout(idle)
      clearTimeout(last)
      socket.destroy()
      resolve(parse(raw))
    }
    const idle = setTimeout(() => socket.end(), idleMs)
    const last = setTimeout(finish, idleMs + 2000)
    socket.on('data', (c: Buffer) => {
      raw += c.toString('latin1')
      if (complete(raw)) finish()
    })
    socket.on('error', () => undefined)
    socket.on('close', finish)
    socket.write(bytes)
  })
}

/** The final (non-1xx) response in `raw`, if it has fully arrived. */
function finalResponse (raw: string): { head: string, body: string } | undefined {
  let rest = raw
  for (;;) {
    const end = rest.indexOf('\r\n\r\n')
    if (end === -1) return undefined
    const head = rest.slice(0, end)
    rest = rest.slice(end + 4)
    if (!/^HTTP\/1\.[01] 1\d\d/.test(head)) return { head, body: rest }
  }
}

function complete (raw: string): boolean {
  const r = finalResponse(raw)
  if (r === undefined) return false
  const length = /\r\ncontent-length: *(\d+)/i.exec(r.head)
  if (length !== null) return Buffer.byteLength(r.body, 'latin1') >= Number(length[1])
  if (/\r\ntransfer-encoding: *chunked/i.test(r.head)) return /(^|\r\n)0\r\n\r\n$/.test(r.body)
  return false
}

function parse (raw: string): RawReply {
  const r = finalResponse(raw) ?? { head: raw, body: '' }
  const [statusLine = '', ...lines] = r.head.split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim()
  }
  const body = headers['transfer-encoding'] === 'chunked' ? dechunk(r.body) : r.body
  return { status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0), headers, body, raw }
}

function dechunk (text: string): string {
  let out = ''
  let rest = text
  for (;;) {
    const eol = rest.indexOf('\r\n')
    const size = parseInt(rest.slice(0, eol), 16)
    if (eol === -1 || !(size > 0)) return out
    out += rest.slice(eol + 2, eol + 2 + size)
    rest = rest.slice(eol + 4 + size)
  }
}

/** The reply is a catalogue error: the status, JSON `{statusCode, code, error, message}`, no-store. */
function assertCatalogue (t: Test, reply: RawReply, status: number, code: string, name: string): void {
  t.equal(reply.status, status, `${name}: ${status}`)
  t.match(reply.headers['content-type'], /^application\/json/, `${name}: JSON`)
  let parsed: Record<string, unknown> = {}
  try {
    parsed = JSON.parse(reply.body) as Record<string, unknown>
  } catch {
    t.fail(`${name}: the body is JSON (${JSON.stringify(reply.body.slice(0, 120))})`)
  }
  t.match(parsed, { statusCode: status, code, error: String, message: String }, `${name}: ${code}`)
}

function origin200 (t: Test): Promise<Origin> {
  return startOrigin(t, (req, res) => {
    req.resume()
    const body = `origin saw ${req.method} ${req.url}`
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), 'cache-control': 'max-age=60' })
    res.end(body)
  })
}

const HOST = 'shop.test'
const req = (line: string, headers = `Host: ${HOST}\r\n`): string => `${line}\r\n${headers}\r\n`

const LIMITS = { maxUrlLength: 200, maxHeaderBytes: '2KiB', maxBodyBytes: 100 }

t.test('malformed requests get a clear 4xx in the catalogue shape', async (t) => {
  const origin = await origin200(t)
  const gw = await withGateway(t, { config: { limits: LIMITS, routes: [{ host: HOST, origin: origin.url }] } })
  const rows: Array<[string, string | Buffer, number, string]> = [
    ['invalid percent-encoding in the path', req('GET /a%zz HTTP/1.1'), 400, 'CG_ERR_BAD_REQUEST'],
    ['a truncated escape in the path', req('GET /a%4 HTTP/1.1'), 400, 'CG_ERR_BAD_REQUEST'],
    ['an escape that is not UTF-8 in the path', req('GET /caf%E9 HTTP/1.1'), 400, 'CG_ERR_BAD_REQUEST'],
    ['invalid percent-encoding in the query', req('GET /a?q=%zz HTTP/1.1'), 400, 'CG_ERR_BAD_REQUEST'],
    ['an encoded lone surrogate', req('GET /%ED%A0%80 HTTP/1.1'), 400, 'CG_ERR_BAD_REQUEST'],
    ['a raw space in the target', req('GET /a b HTTP/1.1'), 400, 'CG_ERR_BAD_REQUEST'],
    ['a control character in the target', req('GET /a\x01b HTTP/1.1'), 400, 'CG_ERR_BAD_REQUEST'],
    ['raw non-ASCII bytes in the target', Buffer.from(req('GET /café HTTP/1.1'), 'utf8'), 400, 'CG_ERR_BAD_REQUEST'],
    ['a NUL in a header value', req('GET / HTTP/1.1', `Host: ${HOST}\r\nX-A: a\x00b\r\n`), 400, 'CG_ERR_BAD_REQUEST'],
    ['a header line without a colon', req('GET / HTTP/1.1', `Host: ${HOST}\r\nnot a header\r\n`), 400, 'CG_ERR_BAD_REQUEST'],
    ['Content-Length with Transfer-Encoding (smuggling)', `POST / HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, 400, 'CG_ERR_BAD_REQUEST'],
    ['two different Content-Lengths', `POST / HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab`, 400, 'CG_ERR_BAD_REQUEST'],
    ['an unknown HTTP version', req('GET / HTTP/9.9'), 400, 'CG_ERR_BAD_REQUEST'],
    ['the HTTP/2 preface on an HTTP/1 port', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 400, 'CG_ERR_BAD_REQUEST'],
    ['no Host header (HTTP/1.1)', req('GET / HTTP/1.1', ''), 400, 'CG_ERR_BAD_REQUEST'],
    ['no Host header (HTTP/1.0)', req('GET / HTTP/1.0', ''), 400, 'CG_ERR_BAD_REQUEST'],
    ['an empty Host header', req('GET / HTTP/1.1', 'Host: \r\n'), 400, 'CG_ERR_BAD_REQUEST'],
    ['two Host headers', req('GET / HTTP/1.1', `Host: ${HOST}\r\nHost: evil.test\r\n`), 400, 'CG_ERR_BAD_REQUEST'],
    ['a Host with a port beyond 65535', req('GET / HTTP/1.1', `Host: ${HOST}:99999\r\n`), 400, 'CG_ERR_BAD_REQUEST'],
    ['a host no route serves', req('GET / HTTP/1.1', 'Host: other.test\r\n'), 404, 'CG_ERR_NO_ROUTE'],
    // The target is normalized before any route is chosen (request-fields.ts resolveRequest).
    ['an absolute-form target for another host', req('GET http://evil.test/x HTTP/1.1'), 400, 'CG_ERR_BAD_REQUEST'],
    ['the asterisk-form target', req('OPTIONS * HTTP/1.1'), 400, 'CG_ERR_BAD_REQUEST'],
    ['a method no parser knows', req('FOO / HTTP/1.1'), 405, 'CG_ERR_METHOD_NOT_ALLOWED'],
    ['TRACE', req('TRACE / HTTP/1.1'), 405, 'CG_ERR_METHOD_NOT_ALLOWED'],
    ['CONNECT', req(`CONNECT ${HOST}:443 HTTP/1.1`), 405, 'CG_ERR_METHOD_NOT_ALLOWED'],
    ['TLS bytes on the plain port', Buffer.from('16030100a5010000a10303', 'hex'), 405, 'CG_ERR_METHOD_NOT_ALLOWED'],
    [`a URL longer than limits.maxUrlLength (${LIMITS.maxUrlLength})`, req(`GET /${'a'.repeat(LIMITS.maxUrlLength)} HTTP/1.1`), 414, 'CG_ERR_URI_TOO_LONG'],
    ['headers larger than limits.maxHeaderBytes (2KiB)', req('GET / HTTP/1.1', `Host: ${HOST}\r\nX-Big: ${'b'.repeat(3000)}\r\n`), 431, 'CG_ERR_HEADERS_TOO_LARGE'],
    ['many headers larger than limits.maxHeaderBytes together', req('GET / HTTP/1.1', `Host: ${HOST}\r\n${Array.from({ length: 100 }, (_, i) => `X-H${i}: ${'v'.repeat(30)}\r\n`).join('')}`), 431, 'CG_ERR_HEADERS_TOO_LARGE'],
    [`a declared body larger than limits.maxBodyBytes (${LIMITS.maxBodyBytes})`, `POST / HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 101\r\n\r\n${'x'.repeat(101)}`, 413, 'CG_ERR_BODY_TOO_LARGE'],
    ['a chunked body that grows past limits.maxBodyBytes', `POST / HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n${'x'.repeat(64)}\r\n40\r\n${'x'.repeat(64)}\r\n0\r\n\r\n`, 413, 'CG_ERR_BODY_TOO_LARGE']
  ]
  for (const [name, bytes, status, code] of rows) assertCatalogue(t, await rawRequest(gw, bytes), status, code, name)
  t.equal(origin.count(), 0, 'none of them reached the origin')
  const after = await rawRequest(gw, req('GET /still-up HTTP/1.1'))
  t.equal(after.status, 200, 'the gateway still serves')
  t.equal(after.body, 'origin saw GET /still-up')
})

t.test('each limit is the configured one: just under passes, just over is refused', async (t) => {
  const origin = await origin200(t)
  const gw = await withGateway(t, { config: { limits: LIMITS, routes: [{ host: HOST, origin: origin.url }] } })
  const atUrl = `/${'u'.repeat(LIMITS.maxUrlLength - 1)}`
  t.equal((await rawRequest(gw, req(`GET ${atUrl} HTTP/1.1`))).status, 200, 'a URL of exactly maxUrlLength passes')
  t.equal((await rawRequest(gw, req(`GET ${atUrl}u HTTP/1.1`))).status, 414, 'one character more is a 414')
  t.equal((await rawRequest(gw, req('GET / HTTP/1.1', `Host: ${HOST}\r\nX-Big: ${'b'.repeat(1500)}\r\n`))).status, 200, 'headers under 2KiB pass')
  t.equal((await rawRequest(gw, req('GET / HTTP/1.1', `Host: ${HOST}\r\nX-Big: ${'b'.repeat(2100)}\r\n`))).status, 431, 'headers over 2KiB are a 431')
  const body = (n: number): string => `POST /form HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: ${n}\r\n\r\n${'x'.repeat(n)}`
  t.equal((await rawRequest(gw, body(100))).status, 200, 'a body of exactly maxBodyBytes passes through')
  t.equal((await rawRequest(gw, body(101))).status, 413)

  // The defaults: 8192 characters of URL, 16KiB of headers, 10MiB of body.
  const defaults = await withGateway(t, { config: { routes: [{ host: HOST, origin: origin.url }] } })
  t.equal((await rawRequest(defaults, req(`GET /${'u'.repeat(8191)} HTTP/1.1`))).status, 200, 'default maxUrlLength 8192 passes')
  t.equal((await rawRequest(defaults, req(`GET /${'u'.repeat(8192)} HTTP/1.1`))).status, 414)
  t.equal((await rawRequest(defaults, req('GET / HTTP/1.1', `Host: ${HOST}\r\nX-Big: ${'b'.repeat(17 * 1024)}\r\n`))).status, 431, 'default maxHeaderBytes 16KiB')
  t.equal((await rawRequest(defaults, `POST / HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: ${10 * 1024 * 1024 + 1}\r\n\r\n`)).status, 413, 'default maxBodyBytes 10MiB')
})

t.test('absurd query strings are answered promptly and keyed like any other', async (t) => {
  const origin = await origin200(t)
  const gw = await withGateway(t, { config: { limits: { maxUrlLength: 100_000, maxHeaderBytes: '128KiB' }, routes: [{ host: HOST, origin: origin.url }] } })
  const cases: Array<[string, string]> = [
    // (What is forwarded stays under the test origin's own 16KiB header limit.)
    ['1,500 parameters in reverse order', '/q?' + Array.from({ length: 1500 }, (_, i) => `p${1500 - i}=${i}`).join('&')],
    ['3,000 copies of one parameter', '/q?' + 'a=1&'.repeat(3000)],
    ['20,000 empty pairs', '/q?' + '&'.repeat(20_000) + 'x=1'],
    ['a 12,000-character value', '/q?v=' + 'x'.repeat(12_000)],
    ['a parameter name of 10,000 escapes of unreserved characters', '/q?' + '%41'.repeat(10_000) + '=1']
  ]
  for (const [name, target] of cases) {
    const started = performance.now()
    const reply = await rawRequest(gw, req(`GET ${target} HTTP/1.1`))
    const ms = performance.now() - started
    t.equal(reply.status, 200, `${name}: answered`)
    t.ok(ms < 1000, `${name}: in ${ms.toFixed(0)} ms`)
  }
  t.equal(origin.requests.find((r) => r.url.startsWith('/q?x'))?.url, '/q?x=1', 'empty pairs are dropped before forwarding')
})

t.test('random garbage request heads never get a 5xx nor take the gateway down', async (t) => {
  const origin = await origin200(t)
  const gw = await withGateway(t, { config: { limits: LIMITS, routes: [{ host: HOST, origin: origin.url }] } })
  const method = fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'TRACE', 'CONNECT', 'PURGE', 'FOO', 'get', '', 'G ET', '\x00')
  const piece = fc.constantFrom('/', 'a', '%', '%2', '%zz', '%2e', '..', '.', '?', '&', '=', '#', ' ', '\t', '\x01', '\x7f', 'é', '%C3%A9', '%ff', '*', 'http://', '//', '\\', '"', '<', '{')
  const target = fc.array(piece, { maxLength: 12 }).map((p) => p.join(''))
  const version = fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/1', 'HTTP/1.1 extra', '')
  const header = fc.constantFrom(`Host: ${HOST}`, 'Host: other.test', 'Host:', `Host: ${HOST}:0`, 'Content-Length: 3', 'Content-Length: -1', 'Content-Length: x',
    'Transfer-Encoding: chunked', 'Transfer-Encoding: gzip, chunked', 'X-Forwarded-Host: evil.test', 'Expect: 100-continue', 'Connection: upgrade', 'Upgrade: websocket',
    'Range: bytes=0-1', 'Cache-Control: only-if-cached', 'no colon', ': empty name', 'X-\x01: bad', 'Accept: */*')
  const head = fc.tuple(method, target, version, fc.array(header, { maxLength: 5 }))
    .map(([m, tg, v, hs]) => `${m} ${tg} ${v}\r\n${hs.map((h) => `${h}\r\n`).join('')}\r\nabc`)
  let answered = 0
  const bad: Array<{ bytes: string, reply: string }> = []
  await fc.assert(fc.asyncProperty(head, async (bytes) => {
    const reply = await rawRequest(gw, bytes)
    if (reply.raw === '') return true // closed without an answer: allowed for bytes that are not HTTP
    answered++
    const fine = reply.status >= 200 && reply.status < 500
    if (!fine) bad.push({ bytes, reply: reply.raw.slice(0, 300) })
    return fine
  }), { numRuns: 300 }).catch((err: unknown) => t.fail(String(err)))
  t.same(bad, [], 'no request got a 5xx or an unparsable answer')
  t.ok(answered > 200, `${answered} of 300 got an answer`)
  t.equal((await rawRequest(gw, req('GET /alive HTTP/1.1'))).status, 200, 'the gateway still serves')
})
