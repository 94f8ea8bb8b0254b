/**
 * Clients that go away or stall mid-upload must not pin the route's origin connections: the
 * origin request is aborted when the client aborts, or when its body pauses longer than
 * limits.requestBodyTimeout (answered 408). Uploads with Expect: 100-continue reach the origin.
 * On both stores (the miss that follows the uploads uses the store).
 */
import t from 'tap'
import type { Test } from 'tap'
import net from 'node:net'
import { request as httpRequest } from 'node:http'
import { request } from 'undici'
import { startOrigin, type Origin } from '../helpers/origin.ts'
import { withGateway, type GatewayHandle, type GatewayOptions } from '../helpers/gateway.ts'
import { startRedis } from '../helpers/redis.ts'

type StoreKind = 'memory' | 'redis'

const redis = await startRedis(t)
let prefixes = 0
const MAX_CONNECTIONS = 2

async function gateway (t: Test, kind: StoreKind, options: GatewayOptions): Promise<GatewayHandle> {
  if (kind === 'memory') return await withGateway(t, options)
  return await withGateway(t, { ...options, config: { ...options.config, redis: { url: redis.url, keyPrefix: `gone${++prefixes}:` } } })
}

/** An origin that answers uploads once their body is complete, and GETs at once; it tells when the nth request arrives. */
async function uploadOrigin (t: Test): Promise<{ origin: Origin, seen: (n: number) => Promise<void>, bodies: string[] }> {
  const bodies: string[] = []
  const waiters: Array<{ n: number, resolve: () => void }> = []
  const origin = await startOrigin(t, (req, res, n) => {
    for (const w of waiters.filter((w) => w.n <= n)) w.resolve()
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'max-age=60' })
      res.end('fresh')
      return
    }
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      bodies.push(Buffer.concat(chunks).toString())
      res.writeHead(201, { 'content-type': 'text/plain' })
      res.end('created')
    })
  })
  const seen = async (n: number): Promise<void> => {
    if (origin.requests.length >= n) return
    await new Promise<void>((resolve, reject) => {
      waiters.push({ n, resolve })
      // Without the fix the pool stays full and the request never arrives: fail, do not hang.
      AbortSignal.timeout(10_000).addEventListener('abort', () => reject(new Error(`the origin never saw request ${n}: its connections are pinned`)))
    })
  }
  return { origin, seen, bodies }
}

/** Opens an upload announcing 100,000 bytes and sends three. */
async function startUpload (url: string): Promise<net.Socket> {
  const { hostname, port } = new URL(url)
  const socket = net.connect(Number(port), hostname)
  socket.on('error', () => undefined)
  await new Promise<void>((resolve) => socket.once('connect', resolve))
  socket.write(`POST /upload HTTP/1.1\r\nHost: ${hostname}:${port}\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\nabc`)
  return socket
}

/** Everything the gateway writes back on a socket until it closes. */
async function answerOf (socket: net.Socket): Promise<string> {
  let text = ''
  socket.on('data', (c: Buffer) => { text += c.toString('latin1') })
  await new Promise<void>((resolve) => socket.once('close', () => resolve()))
  return text
}

function behaviours (kind: StoreKind): void {
  t.test(`on the ${kind} store`, async (t) => {
    t.test('twice maxConnections uploads aborted by their clients free the origin pool: a new miss is answered within a second', async (t) => {
      const { origin, seen } = await uploadOrigin(t)
      const gw = await gateway(t, kind, { config: { routes: [{ path: '/', origin: origin.url, maxConnections: MAX_CONNECTIONS }] } })
      for (let i = 1; i <= 2 * MAX_CONNECTIONS; i++) {
        const socket = await startUpload(gw.url)
        await seen(i)
        socket.destroy()
      }
      const res = await request(`${gw.url}/after`, { signal: AbortSignal.timeout(1000) })
      t.equal(res.statusCode, 200)
      t.equal(await res.body.text(), 'fresh')
    })

    t.test('uploads that stall past limits.requestBodyTimeout are answered 408 and free the origin pool', async (t) => {
      const { origin, seen } = await uploadOrigin(t)
      const gw = await gateway(t, kind, {
        config: { limits: { requestBodyTimeout: '300ms' }, routes: [{ path: '/', origin: origin.url, maxConnections: MAX_CONNECTIONS }] }
      })
      const answers: Array<Promise<string>> = []
      for (let i = 1; i <= 2 * MAX_CONNECTIONS; i++) answers.push(answerOf(await startUpload(gw.url)))
      // The pool is full of stalled uploads; the others wait for a connection (and may time out waiting).
      await seen(MAX_CONNECTIONS)
      for (const answer of await Promise.all(answers)) {
        t.match(answer, /^HTTP\/1\.1 408 /, 'the stalled client is told its request timed out')
        t.match(answer, /"code":"CG_ERR_REQUEST_TIMEOUT"/)
      }
      const res = await request(`${gw.url}/after`, { signal: AbortSignal.timeout(1000) })
      t.equal(res.statusCode, 200)
      await res.body.text()
    })

    t.test('an upload with Expect: 100-continue gets 100 Continue and reaches the origin with its body', async (t) => {
      const { origin, bodies } = await uploadOrigin(t)
      const gw = await gateway(t, kind, { config: { routes: [{ path: '/', origin: origin.url }] } })
      const body = 'x'.repeat(4096)
      const { hostname, port } = new URL(gw.url)
      const result = await new Promise<{ status: number, text: string, continued: boolean }>((resolve, reject) => {
        let continued = false
        const req = httpRequest({ host: hostname, port, path: '/upload', method: 'POST', agent: false, headers: { expect: '100-continue', 'content-type': 'text/plain', 'content-length': String(body.length) } }, (res) => {
          let text = ''
          res.on('data', (c: Buffer) => { text += c.toString() })
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text, continued }))
        })
        req.on('continue', () => {
          continued = true
          req.end(body)
        })
        req.on('error', reject)
      })
      t.ok(result.continued, 'the client was told to continue')
      t.equal(result.status, 201, result.text)
      t.same(bodies, [body], 'the origin received the whole body')
      t.notOk(origin.requests[0]?.headers.expect, 'the expectation was met by the gateway, not forwarded')
    })
  })
}

behaviours('memory')
behaviours('redis')
