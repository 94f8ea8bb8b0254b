/**
 * Collapsed waiters answered from the flight's complete body (issue 12): like a stored entry,
 * one buffer with Content-Length and the fields a hit gets; client conditionals, HEAD and
 * ranges as a hit answers them; a body cut short gives them an error, never a short body; and
 * a field the origin keeps from later requests (qualified no-cache) never reaches a waiter,
 * buffered or streamed.
 */
import t from 'tap'
import type { Test } from 'tap'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { withGateway, type GatewayHandle, type Reply } from '../helpers/gateway.ts'
import { startOrigin, type Origin } from '../helpers/origin.ts'
import { startRedis } from '../helpers/redis.ts'

const BODY = 'b'.repeat(3000) + 'u'.repeat(3000)

/** An origin whose answers wait until the test opens the gate, so every request of a burst is surely concurrent. */
async function gatedOrigin (t: Test, respond: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ origin: Origin, open: () => void, arrived: Promise<void> }> {
  let open!: () => void
  let arrivedResolve!: () => void
  const gate = new Promise<void>((resolve) => { open = resolve })
  const arrived = new Promise<void>((resolve) => { arrivedResolve = resolve })
  const origin = await startOrigin(t, async (req, res) => {
    arrivedResolve()
    await gate
    respond(req, res)
  })
  return { origin, open, arrived }
}

/** The body in two writes without Content-Length (chunked): the length shows only once it has all arrived. */
function chunked (headers: Record<string, string> = {}) {
  return (_req: IncomingMessage, res: ServerResponse): void => {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60', etag: '"v1"', 'surrogate-key': 'p1 p2', ...headers })
    res.write(BODY.slice(0, 3000))
    res.end(BODY.slice(3000))
  }
}

type Result = Reply | { error: unknown }

/**
 * n requests made at once; `received` resolves once every one of them has reached the gateway
 * (its server's 'request' event), `replies` with each reply or the error its client saw.
 */
function burst (gw: GatewayHandle, n: number, send: (i: number) => Promise<Reply>): { replies: Promise<Result[]>, received: Promise<void> } {
  let seen = 0
  let all!: () => void
  const received = new Promise<void>((resolve) => { all = resolve })
  const count = (): void => { if (++seen === n) all() }
  gw.gateway.app.server.on('request', count)
  received.then(() => gw.gateway.app.server.off('request', count), () => undefined)
  const replies = Promise.all(Array.from({ length: n }, async (_, i) => await send(i).catch((error: unknown) => ({ error }))))
  return { replies, received }
}

function replied (r: Result): Reply {
  if ('error' in r) throw new Error(`the client saw an error: ${String(r.error)}`)
  return r
}

const collapsed = (r: Reply): boolean => /; collapsed/.test(r.header('cache-status') ?? '')
/** The distinct values of one field over some replies (undefined for an absent field). */
const distinct = (replies: Reply[], name: string): Array<string | undefined> => [...new Set(replies.map((r) => r.header(name)))]
const VOLATILE = new Set(['date', 'connection', 'keep-alive', 'cache-status', 'age'])

for (const kind of ['memory', 'redis'] as const) {
  t.test(`${kind} store: waiters get the leader's bytes in one buffer with Content-Length and the fields a hit gets`, async (t) => {
    const g = await gatedOrigin(t, chunked())
    const redis = kind === 'redis' ? await startRedis(t) : undefined
    const gw = await withGateway(t, { config: { routes: [{ origin: g.origin.url }], ...(redis !== undefined ? { redis: { url: redis.url } } : {}) } })
    const b = burst(gw, 30, async () => await gw.get('/product'))
    await b.received
    await g.arrived
    g.open()
    const replies = (await b.replies).map(replied)
    t.equal(g.origin.count(), 1, 'one origin request')
    t.ok(replies.every((r) => r.status === 200 && r.body === BODY), 'every client got the whole body, byte for byte')
    const waiters = replies.filter(collapsed)
    t.equal(waiters.length, 29, 'every other client was collapsed onto the leader')
    t.same(distinct(waiters, 'cache-status'), ['cachegate; fwd=uri-miss; fwd-status=200; collapsed'])
    t.same(distinct(waiters, 'content-length'), [String(BODY.length)], 'Content-Length of the whole body')
    t.same(distinct(waiters, 'transfer-encoding'), [undefined], 'not chunked')
    t.same(distinct(waiters, 'age'), ['0'], 'Age, as a stored response has (RFC 9111 §5.1)')
    t.same(distinct(waiters, 'via'), ['1.1 cachegate'])
    await gw.settled()
    const hit = await gw.get('/product')
    t.match(hit.header('cache-status'), /^cachegate; hit/)
    const fields = (r: Reply): Record<string, string | undefined> => Object.fromEntries(Object.keys(r.headers).filter((k) => !VOLATILE.has(k)).sort().map((k) => [k, r.header(k)]))
    t.same(fields(waiters[0] as Reply), fields(hit), 'the same fields as the hit a moment later')
    const outcomes = gw.outcomes.filter((o) => o.collapsed)
    t.equal(outcomes.length, 29, 'one outcome (log line, metrics) per waiter')
    t.ok(outcomes.every((o) => o.outcome === 'miss' && o.status === 200 && o.originStatus === 200 && o.cacheStatus === 'cachegate; fwd=uri-miss; fwd-status=200; collapsed'))
  })
}

t.test('waiters whose If-None-Match matches the response get 304', async (t) => {
  // The origin ignores conditionals: the first conditional miss gets the full response,
  // which the other requests with the same validators join.
  const g = await gatedOrigin(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60', etag: '"v1"', 'content-length': BODY.length })
    res.end(BODY)
  })
  const gw = await withGateway(t, { config: { routes: [{ origin: g.origin.url }] } })
  const b = burst(gw, 10, async () => await gw.get('/conditional', { 'if-none-match': '"v1"' }))
  await b.received
  await g.arrived
  g.open()
  const replies = (await b.replies).map(replied)
  t.equal(g.origin.count(), 1)
  t.ok(replies.every((r) => r.status === 304 && r.body === '' && r.header('etag') === '"v1"'), 'every client got 304 with the ETag')
  t.equal(replies.filter(collapsed).length, 9, 'the waiters were collapsed')
})

t.test('HEAD and range waiters are answered from the complete body as a hit would be', async (t) => {
  const g = await gatedOrigin(t, chunked())
  const gw = await withGateway(t, { config: { routes: [{ origin: g.origin.url }] } })
  const leader = gw.get('/item')
  await g.arrived
  const b = burst(gw, 6, async (i) => i % 2 === 0
    ? await gw.request('/item', { method: 'HEAD' })
    : await gw.get('/item', { range: 'bytes=2995-3004' }))
  await b.received
  g.open()
  t.equal((await leader).body, BODY)
  const replies = (await b.replies).map(replied)
  t.equal(g.origin.count(), 1)
  t.ok(replies.every(collapsed), 'all collapsed onto the GET')
  const heads = replies.filter((_r, i) => i % 2 === 0)
  const ranges = replies.filter((_r, i) => i % 2 === 1)
  t.same(heads.map((r) => [r.status, r.header('content-length'), r.body]), heads.map(() => [200, String(BODY.length), '']), 'HEAD: 200, the length of the body it would get, no body')
  t.same(ranges.map((r) => [r.status, r.header('content-range'), r.body]), ranges.map(() => [206, `bytes 2995-3004/${BODY.length}`, BODY.slice(2995, 3005)]), 'range: 206 with exactly the bytes asked for')
})

t.test('a body cut short gives every waiter an error, never a short body', async (t) => {
  // The head and half of the announced body, then the connection closes (one write and a
  // FIN: the gateway reads both together).
  const g = await gatedOrigin(t, (req) => {
    const head = `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncache-control: max-age=60\r\ncontent-length: ${BODY.length}\r\n\r\n`
    req.socket.end(head + BODY.slice(0, 3000))
  })
  const gw = await withGateway(t, { config: { routes: [{ origin: g.origin.url }] } })
  const b = burst(gw, 20, async () => await gw.get('/cut'))
  await b.received
  await g.arrived
  g.open()
  const results = await b.replies
  t.equal(g.origin.count(), 1)
  t.notOk(results.some((r) => !('error' in r) && r.status === 200), 'nobody got a 200 (with a short body)')
  const waiters = results.filter((r): r is Reply => !('error' in r) && collapsed(r))
  t.equal(waiters.length, 19, 'every waiter was answered')
  t.ok(waiters.every((w) => w.status === 502 && /^CG_ERR_ORIGIN_(UNREACHABLE|BAD_RESPONSE)$/.test((JSON.parse(w.body) as { code: string }).code)), 'each a 502 with the catalogue error')
  t.match(distinct(waiters, 'cache-status'), [/^cachegate; fwd=uri-miss; fwd-status=200; collapsed; detail=origin-(unreachable|bad-response)$/])
  t.same(distinct(waiters, 'cache-control'), ['no-store'])
  t.ok(gw.outcomes.filter((o) => o.collapsed).every((o) => o.outcome === 'error' && o.status === 502), 'each waiter logged as an error')
  await gw.settled()
  const again = await gw.get('/cut').catch(() => undefined)
  t.notMatch(again?.header('cache-status') ?? '', /hit/, 'nothing was stored')
})

for (const form of ['buffered', 'streamed'] as const) {
  t.test(`a field the origin names in no-cache="…" never reaches a ${form} waiter (RFC 9111 §5.2.2.4)`, async (t) => {
    // Streamed: the body (no Content-Length) outgrows maxObjectSize while the waiters wait.
    const g = await gatedOrigin(t, chunked({ 'cache-control': 'max-age=60, no-cache="x-user"', 'x-user': 'alice' }))
    const gw = await withGateway(t, { config: { routes: [{ origin: g.origin.url }], ...(form === 'streamed' ? { cache: { maxObjectSize: '4KiB' } } : {}) } })
    const b = burst(gw, 10, async () => await gw.get('/me'))
    await b.received
    await g.arrived
    g.open()
    const replies = (await b.replies).map(replied)
    t.equal(g.origin.count(), 1)
    t.ok(replies.every((r) => r.status === 200 && r.body === BODY), 'every client got the whole body')
    const waiters = replies.filter(collapsed)
    t.equal(waiters.length, 9)
    t.ok(waiters.every((w) => w.header('x-user') === undefined), 'no waiter got the leader\'s x-user')
    t.equal(replies.find((r) => !collapsed(r))?.header('x-user'), 'alice', 'the leader got its own response whole')
    if (form === 'streamed') t.ok(waiters.every((w) => w.header('content-length') === undefined), 'streamed as it arrived')
  })
}
