/**
 * An origin's unsolicited 100 (Continue) responses (RFC 9110 §15.2; issue 10): cachegate never
 * forwards Expect, so every 100 from an origin is unsolicited. It is ignored and never relayed;
 * the final response answers the client, from one origin request, and is stored as usual. A
 * response body that reads like a 100 is never touched. The origins write raw bytes.
 */
import t from 'tap'
import type { Test } from 'tap'
import { request as httpRequest } from 'node:http'
import { normalizeRequestUrl } from '../../src/cache/key.ts'
import { withGateway, type GatewayHandle } from '../helpers/gateway.ts'
import { startRawOrigin, writeApart, type RawOrigin, type RawRequest } from '../helpers/raw.ts'
import type { Socket } from 'node:net'

const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n'
const LINK = '</style.css>; rel=preload; as=style'

/** A response head and body as an origin writes it; cacheable unless told otherwise. */
function response (body: string, { status = '200 OK', fields = 'Cache-Control: max-age=600\r\n' } = {}): string {
  return `HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\n${fields}Content-Length: ${Buffer.byteLength(body, 'latin1')}\r\n\r\n${body}`
}

interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
  /** Every 1xx the client received before the final answer. */
  interim: number[]
  ms: number
}

/**
 * A request through node:http, which reports every interim response ('continue' for a 100).
 * With `expect`, it sends `Expect: 100-continue` and its body only once a 100 arrived.
 */
async function send (gw: GatewayHandle, path: string, method = 'GET', body?: string, { expect = false } = {}): Promise<Answer> {
  const { hostname, port } = new URL(gw.url)
  const interim: number[] = []
  const started = performance.now()
  return await new Promise((resolve, reject) => {
    const headers = body === undefined ? {} : { 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(body)), ...(expect ? { expect: '100-continue' } : {}) }
    const req = httpRequest({ host: hostname, port, path, method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('latin1'), interim, ms: performance.now() - started }))
      res.on('error', reject)
    })
    req.on('continue', () => {
      interim.push(100)
      if (expect) req.end(body)
    })
    // Node reports a 100 as 'continue' and as 'information': count it once.
    req.on('information', (info) => { if (info.statusCode !== 100) interim.push(info.statusCode) })
    req.on('error', reject)
    if (expect) req.flushHeaders()
    else req.end(body)
  })
}

const code = (a: Answer): string | undefined => (JSON.parse(a.body) as { code?: string }).code

async function stored (gw: GatewayHandle, path: string): Promise<string | null> {
  const n = normalizeRequestUrl({ scheme: 'http', host: new URL(gw.url).host, target: path })
  if (!n.ok) throw new Error(n.reason)
  const { entry } = await gw.gateway.store.lookup(n.key)
  return entry === null ? null : entry.body.toString('latin1')
}

/** A raw origin answering each request by its path, behind a gateway with one route to it. */
async function setup (t: Test, answer: (socket: Socket, request: RawRequest, path: string) => void, route: Record<string, unknown> = {}): Promise<{ origin: RawOrigin, gw: GatewayHandle }> {
  const origin = await startRawOrigin(t, (socket, request) => { answer(socket, request, request.head.split(' ')[1] ?? '') })
  const gw = await withGateway(t, { config: { routes: [{ origin: origin.url, ...route }] } })
  return { origin, gw }
}

t.test('a GET answered 100 then 200 gets the 200 from one origin request, no 100, and the answer is stored', async (t) => {
  const { origin, gw } = await setup(t, (socket) => { socket.write(CONTINUE + response('the page')) })
  const first = await send(gw, '/page')
  t.equal(first.status, 200)
  t.equal(first.body, 'the page')
  t.same(first.interim, [], 'the 100 was not relayed')
  t.match(first.headers['cache-status'], /fwd=uri-miss; fwd-status=200; stored/)
  t.equal(origin.requests.length, 1, 'asked once: no retry')
  await gw.settled()
  t.equal(await stored(gw, '/page'), 'the page')
  const hit = await send(gw, '/page')
  t.equal(hit.body, 'the page')
  t.match(hit.headers['cache-status'], /hit/)
  t.equal(origin.requests.length, 1)
})

t.test('a POST with Expect: 100-continue answered 100 then 201 gets one 100 (the gateway\'s own) and the 201, asked once, its body delivered', async (t) => {
  const { origin, gw } = await setup(t, (socket) => { socket.write(CONTINUE + response('created', { status: '201 Created', fields: '' })) })
  const answer = await send(gw, '/orders', 'POST', 'an order', { expect: true })
  t.equal(answer.status, 201)
  t.equal(answer.body, 'created')
  t.same(answer.interim, [100], 'one 100: this hop\'s answer to the client\'s Expect (its body was sent after it); the origin\'s is not relayed')
  t.equal(origin.requests.length, 1)
  t.equal(origin.requests[0]?.body.toString(), 'an order')
  t.notMatch(origin.requests[0]?.head, /^expect:/im, 'Expect is not forwarded: the origin\'s 100 was unsolicited')
})

t.test('a 100 split over several TCP reads, two 100s, and a 100 with fields are all dropped', async (t) => {
  const { origin, gw } = await setup(t, (socket, _request, path) => {
    if (path === '/split') writeApart(socket, ['HTTP/1.1 10', '0 Continue\r', '\n\r\n', response('after a split 100')])
    else if (path === '/two') socket.write(CONTINUE + CONTINUE + response('after two'))
    else socket.write('HTTP/1.1 100 Continue\r\nServer: legacy\r\nX-Request-Id: 7\r\n\r\n' + response('after fields'))
  })
  const bodies: Array<[string, string]> = [['/split', 'after a split 100'], ['/two', 'after two'], ['/fields', 'after fields']]
  for (const [path, body] of bodies) {
    const answer = await send(gw, path)
    t.same([answer.status, answer.body, answer.interim], [200, body, []], path)
  }
  t.equal(origin.requests.length, 3, 'each asked once')
})

t.test('a 103 Early Hints among 100s is still relayed, the 100s are not', async (t) => {
  const { gw } = await setup(t, (socket) => {
    socket.write(CONTINUE + `HTTP/1.1 103 Early Hints\r\nLink: ${LINK}\r\n\r\n` + CONTINUE + response('hinted', { fields: `Link: ${LINK}\r\n` }))
  })
  const answer = await send(gw, '/hinted')
  t.equal(answer.status, 200)
  t.equal(answer.body, 'hinted')
  t.same(answer.interim, [103])
})

t.test('a body holding a 100 response at a read boundary is delivered and stored byte for byte', async (t) => {
  const chunkedHead = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: max-age=600\r\nTransfer-Encoding: chunked\r\n\r\n'
  const { gw } = await setup(t, (socket, _request, path) => {
    if (path === '/length') {
      const body = 'first ' + CONTINUE + 'last'
      const whole = response(body)
      // The second read starts with the 100's bytes.
      writeApart(socket, [whole.slice(0, whole.length - body.length + 6), CONTINUE + 'last'])
    } else {
      // Chunks "first ", the 100's 25 (0x19) bytes, "last": the second read starts with the 100.
      writeApart(socket, [chunkedHead + '6\r\nfirst \r\n19\r\n', CONTINUE + '\r\n4\r\nlast\r\n0\r\n\r\n'])
    }
  })
  const expected = { '/length': 'first ' + CONTINUE + 'last', '/chunked': 'first ' + CONTINUE + 'last' }
  for (const [path, body] of Object.entries(expected)) {
    const answer = await send(gw, path)
    t.equal(answer.status, 200, path)
    t.equal(answer.body, body, `${path}: delivered intact`)
    await gw.settled()
    t.equal(await stored(gw, path), body, `${path}: stored intact`)
    t.equal((await send(gw, path)).body, body, `${path}: and served intact from the store`)
  }
})

t.test('the origin connection is kept alive across answers with 100s, and a body that reads like a response does not leak into the next', async (t) => {
  const forged = 'one ' + CONTINUE + response('forged')
  const { origin, gw } = await setup(t, (socket, request, path) => {
    if (request.n > 1) {
      socket.write(CONTINUE + response(`answer to ${path}`))
      return
    }
    // The first body goes on, in a read of its own, with what looks like the next answer.
    const whole = CONTINUE + response(forged)
    writeApart(socket, [whole.slice(0, whole.length - forged.length + 4), forged.slice(4)])
  }, { maxConnections: 1 })
  const first = await send(gw, '/1')
  t.equal(first.body, forged)
  for (const path of ['/2', '/3']) {
    const answer = await send(gw, path)
    t.same([answer.status, answer.body], [200, `answer to ${path}`], `${path} gets its own answer`)
  }
  t.equal(origin.connections, 1, 'one connection for the three')
  t.equal(origin.requests.length, 3)
})

t.test('a 100 and then a closed connection is the usual 502, at once', async (t) => {
  const { origin, gw } = await setup(t, (socket) => { socket.end(CONTINUE) }, { timeouts: { headers: '20s' } })
  const get = await send(gw, '/gone')
  t.equal(get.status, 502)
  t.equal(code(get), 'CG_ERR_ORIGIN_UNREACHABLE')
  t.equal(origin.requests.length, 2, 'a GET retried once, as for any connection lost before a response')
  const post = await send(gw, '/gone', 'POST', 'x')
  t.equal(post.status, 502)
  t.equal(origin.requests.length, 3, 'a POST is not retried')
  t.ok(get.ms < 10_000 && post.ms < 10_000, `answered without waiting for timeouts.headers (${get.ms.toFixed(0)} ms, ${post.ms.toFixed(0)} ms)`)
  await gw.settled()
  t.equal(await stored(gw, '/gone'), null)
})

t.test('a malformed or oversized 100 is a 502 CG_ERR_ORIGIN_BAD_RESPONSE, not retried, nothing stored', async (t) => {
  const { origin, gw } = await setup(t, (socket, _request, path) => {
    if (path === '/bare-lf') socket.end('HTTP/1.1 100 Continue\n\n' + response('hidden'))
    else socket.end(`HTTP/1.1 100 Continue\r\nX-Pad: ${'x'.repeat(20_000)}\r\n\r\n` + response('hidden'))
  })
  for (const path of ['/bare-lf', '/huge']) {
    const before = origin.requests.length
    const answer = await send(gw, path)
    t.equal(answer.status, 502, path)
    t.equal(code(answer), 'CG_ERR_ORIGIN_BAD_RESPONSE', path)
    t.equal(origin.requests.length - before, 1, `${path}: not retried`)
    await gw.settled()
    t.equal(await stored(gw, path), null, `${path}: nothing stored`)
  }
})

t.test('an origin sending 100s without end is a 504 after timeouts.headers', async (t) => {
  const { gw } = await setup(t, (socket) => {
    const timer = setInterval(() => { if (socket.destroyed) clearInterval(timer); else socket.write(CONTINUE) }, 20)
  }, { timeouts: { headers: '300ms' } })
  const answer = await send(gw, '/endless')
  t.equal(answer.status, 504)
  t.equal(code(answer), 'CG_ERR_ORIGIN_TIMEOUT')
})
