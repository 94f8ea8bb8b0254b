/**
 * A hit answered by the fast path never reads its request: a GET that carries a body (rare,
 * but a client may send one) must still leave its keep-alive connection usable, whether the
 * body came with the head, after the answer, or large enough to have paused the socket, and
 * on the memory store (answered synchronously) as on Redis (answered after a lookup).
 */
import t from 'tap'
import type { Test } from 'tap'
import { connect, type Socket } from 'node:net'
import { withGatewayOn, type GatewayHandle } from '../helpers/gateway.ts'
import { json, startOrigin } from '../helpers/origin.ts'
import { startRedis } from '../helpers/redis.ts'

const redis = await startRedis(t)

interface RawResponse { status: number, fields: string, body: string }

/** A keep-alive connection that reads whole responses (each with a Content-Length) in order. */
async function connection (t: Test, gw: GatewayHandle): Promise<{ socket: Socket, next: () => Promise<RawResponse> }> {
  const socket = connect(Number(new URL(gw.url).port), '127.0.0.1')
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve).once('error', reject) })
  t.teardown(() => { socket.destroy() })
  let buffered = Buffer.alloc(0)
  let wake: (() => void) | undefined
  let ended = false
  socket.on('data', (chunk: Buffer) => { buffered = Buffer.concat([buffered, chunk]); wake?.() })
  socket.on('close', () => { ended = true; wake?.() })
  const next = async (): Promise<RawResponse> => {
    for (;;) {
      const end = buffered.indexOf('\r\n\r\n')
      if (end !== -1) {
        const head = buffered.subarray(0, end).toString('latin1')
        const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? NaN)
        if (!Number.isInteger(length)) throw new Error(`a response without Content-Length: ${head}`)
        if (buffered.length >= end + 4 + length) {
          const body = buffered.subarray(end + 4, end + 4 + length).toString()
          buffered = buffered.subarray(end + 4 + length)
          return { status: Number(head.slice(9, 12)), fields: head, body }
        }
      }
      if (ended) throw new Error('the connection closed before a whole response')
      await new Promise<void>((resolve) => { wake = resolve })
    }
  }
  return { socket, next }
}

const get = (path: string, fields: string[] = []): string => `GET ${path} HTTP/1.1\r\nHost: shop.example\r\n${fields.map((f) => f + '\r\n').join('')}\r\n`

for (const store of ['memory', 'redis'] as const) {
  t.test(`${store}: a hit for a GET with a body leaves the connection usable`, async (t) => {
    const origin = await startOrigin(t, json({ id: 1 }, { 'cache-control': 'max-age=600' }))
    const gw = await withGatewayOn(t, store === 'redis' ? redis : undefined, { config: { routes: [{ origin: origin.url }] } })
    for (const path of ['/p', '/q']) {
      t.equal((await gw.get(path, { host: 'shop.example' })).status, 200)
      await gw.settled()
    }
    const warmed = origin.count()
    const { socket, next } = await connection(t, gw)
    const isHit = (r: RawResponse, what: string): void => {
      t.equal(r.status, 200, what)
      t.match(r.fields, /\r\ncache-status: [^\r]*hit/i, `${what}: a hit`)
      t.equal(r.body, '{"id":1}', `${what}: the stored body`)
    }

    // A small body sent with the head.
    socket.write(get('/p', ['Content-Length: 5']) + 'hello')
    isHit(await next(), 'small body with the head')
    socket.write(get('/q'))
    isHit(await next(), 'the next request on the connection')

    // A large body that arrives only after the answer.
    const large = 'x'.repeat(300_000)
    socket.write(get('/p', [`Content-Length: ${large.length}`]))
    isHit(await next(), 'answered before its body arrived')
    for (let at = 0; at < large.length; at += 50_000) socket.write(large.slice(at, at + 50_000))
    socket.write(get('/q'))
    isHit(await next(), 'after a large body that came late')

    // A large body in the same write as the head: far past the request stream's buffer, so
    // Node pauses the socket until the body is drained.
    socket.write(get('/p', [`Content-Length: ${large.length}`]) + large + get('/q'))
    isHit(await next(), 'a large body with the head')
    isHit(await next(), 'after a large body with the head')

    t.equal(origin.count(), warmed, 'every one answered from the cache')
  })
}
