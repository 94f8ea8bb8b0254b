/**
 * Origin faults, with origins written on raw sockets (node:net) so they can misbehave the way
 * real ones do: reset mid-body, hang before or during the body, trickle, answer garbage. Every
 * client gets either the whole response or a clean error (a JSON 502/504, or an aborted
 * response once the head was sent: never a short 200), nothing truncated is stored, and each
 * fault costs at most its configured timeout.
 */
import t from 'tap'
import type { Test } from 'tap'
import net from 'node:net'
import { request } from 'undici'
import { normalizeRequestUrl } from '../../src/cache/key.ts'
import { withGateway, type GatewayHandle, type GatewayOptions } from '../helpers/gateway.ts'
import { startOrigin } from '../helpers/origin.ts'
import { startRedis } from '../helpers/redis.ts'

type StoreKind = 'memory' | 'redis'
type Behaviour = (socket: net.Socket, attempt: number, head: string) => void

/** undici checks its headers and body timers about once a second: a timeout fires up to ~1 s late. */
const TIMER_SLACK_MS = 1500

const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

interface RawOrigin {
  url: string
  /** Requests received (one per attempt: every behaviour here ends its connection). */
  attempts: number
  heads: string[]
  behave: Behaviour
}

/** An origin speaking raw bytes: `behave` answers each request head as it likes. */
async function rawOrigin (t: Test, behave: Behaviour): Promise<RawOrigin> {
  const sockets = new Set<net.Socket>()
  const origin: RawOrigin = { url: '', attempts: 0, heads: [], behave }
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => undefined)
    let buffered = ''
    socket.on('data', (chunk: Buffer) => {
      if (buffered === null) return
      buffered += chunk.toString('latin1')
      const end = buffered.indexOf('\r\n\r\n')
      if (end === -1) return
      const head = buffered.slice(0, end)
      buffered = ''
      origin.heads.push(head)
      origin.behave(socket, ++origin.attempts, head)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  origin.url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`
  t.teardown(async () => {
    for (const s of sockets) s.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return origin
}

const OK_BODY = 'the whole body, 40 bytes long, all here.'
const okResponse = (socket: net.Socket): void => {
  socket.end(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${OK_BODY.length}\r\nCache-Control: max-age=600\r\nConnection: close\r\n\r\n${OK_BODY}`)
}

const redis = await startRedis(t)
let prefixes = 0

async function gateway (t: Test, kind: StoreKind, options: GatewayOptions): Promise<GatewayHandle> {
  if (kind === 'memory') return await withGateway(t, options)
  return await withGateway(t, { ...options, config: { ...options.config, redis: { url: redis.url, keyPrefix: `faults${++prefixes}:` } } })
}

interface Outcome { status: number, body: string, aborted: boolean, ms: number, cacheStatus: string, code: string | undefined }

/** A GET that reports an aborted body instead of throwing; `onHead` is called once the response head has arrived. */
async function fetchOutcome (gw: GatewayHandle, path: string, method: 'GET' | 'POST' = 'GET', onHead?: () => void): Promise<Outcome> {
  const started = performance.now()
  const res = await request(gw.url + path, { method, ...(method === 'POST' ? { body: 'payload' } : {}) })
  onHead?.()
  let body = ''
  let aborted = false
  try {
    body = await res.body.text()
  } catch {
    aborted = true
  }
  let code: string | undefined
  try {
    code = (JSON.parse(body) as { code?: string }).code
  } catch {}
  return { status: res.statusCode, body, aborted, ms: performance.now() - started, cacheStatus: String(res.headers['cache-status']), code }
}

async function storedBody (gw: GatewayHandle, path: string): Promise<string | null> {
  const n = normalizeRequestUrl({ scheme: 'http', host: new URL(gw.url).host, target: path })
  if (!n.ok) throw new Error(n.reason)
  const { entry } = await gw.gateway.store.lookup(n.key)
  return entry === null ? null : entry.body.toString()
}

const malformed: Array<[string, string]> = [
  ['a status line that is not HTTP', 'garbage garbage\r\n\r\n'],
  ['a non-numeric status code', 'HTTP/1.1 abc OK\r\nContent-Length: 2\r\n\r\nok'],
  ['a status code outside 100-599', 'HTTP/1.1 999 Weird\r\nContent-Length: 2\r\n\r\nok'],
  ['a non-numeric Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nok'],
  ['a negative Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok'],
  ['two different Content-Lengths', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok'],
  ['a header line without a colon', 'HTTP/1.1 200 OK\r\nBroken header\r\nContent-Length: 2\r\n\r\nok'],
  ['an invalid chunk size', 'HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n']
]

function behaviours (kind: StoreKind): void {
  t.test(`on the ${kind} store`, async (t) => {
    for (const framing of ['content-length', 'chunked'] as const) {
      t.test(`an origin that resets mid-body (${framing}) aborts every client's response and stores nothing`, async (t) => {
        let heads = 0
        let headsIn!: () => void
        const allHeads = new Promise<void>((resolve) => { headsIn = resolve })
        const origin = await rawOrigin(t, (socket, attempt) => {
          const head = framing === 'content-length' ? 'Content-Length: 1000' : 'Transfer-Encoding: chunked'
          const part = framing === 'content-length' ? 'x'.repeat(300) : `12c\r\n${'x'.repeat(300)}\r\n`
          socket.write(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: max-age=600\r\n${head}\r\n\r\n${part}`)
          // Once the head is with every client, then RST: coalesced waiters get it when they must
          // start streaming a body that is still arriving (lifecycle/coalesce.ts HOLD_MS). A
          // later single request: once its head is surely out.
          if (attempt === 1) allHeads.then(() => socket.resetAndDestroy(), () => undefined)
          else setTimeout(() => socket.resetAndDestroy(), 100)
        })
        const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
        const all = await Promise.all(Array.from({ length: 5 }, async () => await fetchOutcome(gw, '/reset', 'GET', () => { if (++heads === 5) headsIn() })))
        for (const o of all) {
          t.equal(o.status, 200, 'the head had been sent')
          t.ok(o.aborted, 'and the body is aborted, not ended short')
        }
        t.equal(origin.attempts, 1, 'the five clients shared one fetch, which was not retried after its head')
        await gw.settled()
        t.equal(await storedBody(gw, '/reset'), null, 'nothing was stored')
        const again = await fetchOutcome(gw, '/reset')
        t.ok(again.aborted)
        t.equal(origin.attempts, 2, 'the next request went to the origin again')
      })
    }

    t.test('an origin that closes before its Content-Length is reached aborts the response and stores nothing', async (t) => {
      const origin = await rawOrigin(t, (socket) => {
        socket.end('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: max-age=600\r\nContent-Length: 100\r\n\r\nonly 20 bytes here..')
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const o = await fetchOutcome(gw, '/short')
      t.ok(o.aborted, 'a short body is an aborted response')
      await gw.settled()
      t.equal(await storedBody(gw, '/short'), null)
    })

    t.test('an origin that never sends its headers is a 504 CG_ERR_ORIGIN_TIMEOUT after timeouts.headers', async (t) => {
      const origin = await rawOrigin(t, () => undefined)
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, timeouts: { headers: '300ms' } }] } })
      const o = await fetchOutcome(gw, '/hang')
      t.equal(o.status, 504)
      t.equal(o.code, 'CG_ERR_ORIGIN_TIMEOUT')
      t.equal(o.cacheStatus, 'cachegate; fwd=uri-miss; detail=origin-timeout')
      t.ok(o.ms >= 290 && o.ms < 300 + TIMER_SLACK_MS, `answered after ${o.ms.toFixed(0)} ms`)
      t.equal(origin.attempts, 1, 'a timeout is not retried')
      t.equal(await storedBody(gw, '/hang'), null)
    })

    t.test('an origin that stops mid-body aborts the response after timeouts.body and stores nothing', async (t) => {
      const origin = await rawOrigin(t, (socket) => {
        socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: max-age=600\r\nContent-Length: 100\r\n\r\nhalf')
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, timeouts: { body: '300ms' } }] } })
      const o = await fetchOutcome(gw, '/stall')
      t.equal(o.status, 200)
      t.ok(o.aborted, 'aborted, not a short 200')
      t.ok(o.ms >= 290 && o.ms < 300 + TIMER_SLACK_MS, `after ${o.ms.toFixed(0)} ms`)
      await gw.settled()
      t.equal(await storedBody(gw, '/stall'), null)
    })

    t.test('timeouts.total bounds a body that keeps trickling, and a fetch that never gets its headers', async (t) => {
      const origin = await rawOrigin(t, (socket, _n, head) => {
        if (head.startsWith('GET /silent')) return
        socket.write('HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nCache-Control: max-age=600\r\nContent-Length: 1000\r\n\r\n')
        const timer = setInterval(() => { if (socket.destroyed) clearInterval(timer); else socket.write('x') }, 50)
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, timeouts: { headers: '30s', body: '30s', total: '600ms' } }] } })
      const trickle = await fetchOutcome(gw, '/trickle')
      t.ok(trickle.aborted, 'the trickling body is cut')
      t.ok(trickle.ms >= 590 && trickle.ms < 600 + 500, `at the deadline (${trickle.ms.toFixed(0)} ms)`)
      const silent = await fetchOutcome(gw, '/silent')
      t.equal(silent.status, 504)
      t.equal(silent.code, 'CG_ERR_ORIGIN_TIMEOUT')
      t.ok(silent.ms >= 590 && silent.ms < 600 + 500, `a silent origin is a 504 at the deadline (${silent.ms.toFixed(0)} ms)`)
      await gw.settled()
      t.equal(await storedBody(gw, '/trickle'), null)
    })

    for (const [name, raw] of malformed) {
      t.test(`an origin answering with ${name} is a 502 CG_ERR_ORIGIN_BAD_RESPONSE, for cached and passed-through requests`, async (t) => {
        const origin = await rawOrigin(t, (socket) => { socket.end(raw) })
        const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
        const get = await fetchOutcome(gw, '/bad')
        t.equal(get.status, 502)
        t.equal(get.code, 'CG_ERR_ORIGIN_BAD_RESPONSE')
        t.match(get.cacheStatus, /detail=origin-bad-response/)
        t.equal(origin.attempts, 1, 'a malformed answer is not retried')
        const post = await fetchOutcome(gw, '/bad', 'POST')
        t.equal(post.status, 502)
        t.equal(post.code, 'CG_ERR_ORIGIN_BAD_RESPONSE')
        await gw.settled()
        t.equal(await storedBody(gw, '/bad'), null)
      })
    }

    t.test('a GET is retried once when the connection fails before any response byte, and succeeds', async (t) => {
      const origin = await rawOrigin(t, (socket, attempt) => {
        if (attempt === 1) socket.resetAndDestroy()
        else okResponse(socket)
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const o = await fetchOutcome(gw, '/flaky')
      t.equal(o.status, 200)
      t.equal(o.body, OK_BODY)
      t.equal(origin.attempts, 2)
    })

    t.test('a GET whose connection fails twice before any byte is a 502 after exactly one retry', async (t) => {
      const origin = await rawOrigin(t, (socket, attempt) => { if (attempt % 2 === 1) socket.resetAndDestroy(); else socket.destroy() })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const o = await fetchOutcome(gw, '/down')
      t.equal(o.status, 502)
      t.equal(o.code, 'CG_ERR_ORIGIN_UNREACHABLE')
      t.equal(origin.attempts, 2, 'two attempts, no third')
    })

    t.test('a POST is never retried, not even on a connection error before any byte', async (t) => {
      const origin = await rawOrigin(t, (socket) => { socket.resetAndDestroy() })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const o = await fetchOutcome(gw, '/order', 'POST')
      t.equal(o.status, 502)
      t.equal(o.body.includes('"code":"CG_ERR_ORIGIN'), true, 'a catalogue error')
      await sleep(100)
      t.equal(origin.attempts, 1)
    })

    t.test('a GET that failed after the response head arrived is not retried', async (t) => {
      const origin = await rawOrigin(t, (socket) => {
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 50\r\nCache-Control: max-age=600\r\n\r\npart')
        setTimeout(() => socket.resetAndDestroy(), 50)
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url }] } })
      const o = await fetchOutcome(gw, '/late')
      t.ok(o.aborted)
      await sleep(100)
      t.equal(origin.attempts, 1)
    })

    t.test('maxConnections caps the connections open to the origin at once', async (t) => {
      let open = 0
      let most = 0
      const origin = await startOrigin(t, async (req, res) => {
        open++
        most = Math.max(most, open)
        await sleep(100)
        open--
        res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=600', 'content-length': Buffer.byteLength(req.url ?? '') })
        res.end(req.url)
      })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, maxConnections: 2 }] } })
      const started = performance.now()
      const all = await Promise.all(Array.from({ length: 8 }, async (_, i) => await fetchOutcome(gw, `/p/${i}`)))
      t.ok(all.every((o, i) => o.status === 200 && o.body === `/p/${i}`), 'every request was answered, in turn')
      t.equal(most, 2, 'never more than two requests at the origin at once')
      t.ok(performance.now() - started >= 400, 'eight 100 ms requests two at a time take at least 400 ms')
    })

    t.test('stale-if-error answers from the stored response for every kind of origin fault', async (t) => {
      let fault: Behaviour = (socket) => {
        const body = 'stored and still good'
        socket.end(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nCache-Control: max-age=1, stale-if-error=600\r\nConnection: close\r\n\r\n${body}`)
      }
      const origin = await rawOrigin(t, (socket, n, head) => { fault(socket, n, head) })
      const gw = await gateway(t, kind, { config: { routes: [{ origin: origin.url, timeouts: { headers: '300ms' } }] } })
      t.equal((await fetchOutcome(gw, '/sie')).body, 'stored and still good')
      await gw.settled()
      const faults: Array<[string, Behaviour]> = [
        ['connection reset before any byte', (socket) => { socket.resetAndDestroy() }],
        ['no headers within timeouts.headers', () => undefined],
        ['a malformed answer', (socket) => { socket.end('garbage\r\n\r\n') }],
        ['a 503', (socket) => { socket.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n') }]
      ]
      for (const [name, behaviour] of faults) {
        gw.clock.advance(2000)
        fault = behaviour
        const o = await fetchOutcome(gw, '/sie')
        t.equal(o.status, 200, `${name}: answered`)
        t.equal(o.body, 'stored and still good', `${name}: with the stored body`)
        t.match(o.cacheStatus, /detail=stale-if-error/, `${name}: and says so`)
      }
    })
  })
}

behaviours('memory')
behaviours('redis')
