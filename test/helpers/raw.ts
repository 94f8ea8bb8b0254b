/**
 * Requests through node:http with the target and fields exactly as written: undici would
 * normalize the URL first and refuses some fields (Connection, Keep-Alive, TE). Origins that
 * write raw bytes, for answers no HTTP server library would write.
 */
import { subscribe } from 'node:diagnostics_channel'
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http'
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net'
import { createServer as createTlsServer } from 'node:tls'
import type { Test } from 'tap'

export async function rawGet (base: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number, headers: IncomingHttpHeaders, body: string }> {
  const { hostname, port } = new URL(base)
  return await new Promise((resolve, reject) => {
    const req = httpRequest({ host: hostname, port, path, method: 'GET', headers, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

/** A request as a raw origin received it. */
export interface RawRequest {
  /** Request line and field lines, without the empty line. */
  head: string
  body: Buffer
  /** 1 for the first request the origin received, over all its connections. */
  n: number
  /** 1 for the origin's first connection. */
  connection: number
}

export interface RawOrigin {
  url: string
  requests: RawRequest[]
  /** Connections accepted so far. */
  connections: number
}

/**
 * An origin that writes whatever bytes `answer` writes, for each request on each connection
 * (keep-alive: several requests per connection; bodies framed by Content-Length). With `tls`
 * it speaks TLS (url https:). Closed on teardown.
 */
export async function startRawOrigin (t: Test, answer: (socket: Socket, request: RawRequest) => void, options: { tls?: { key: string, cert: string } } = {}): Promise<RawOrigin> {
  const sockets = new Set<Socket>()
  const origin: RawOrigin = { url: '', requests: [], connections: 0 }
  const serve = (socket: Socket): void => {
    const connection = ++origin.connections
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => undefined)
    let buffered = Buffer.alloc(0)
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk])
      for (;;) {
        const end = buffered.indexOf('\r\n\r\n')
        if (end === -1) return
        const head = buffered.subarray(0, end).toString('latin1')
        if (/^transfer-encoding:/im.test(head)) throw new Error('startRawOrigin reads Content-Length bodies only')
        const length = Number(/^content-length:\s*(\d+)/im.exec(head)?.[1] ?? 0)
        if (buffered.length < end + 4 + length) return
        const request = { head, body: buffered.subarray(end + 4, end + 4 + length), n: origin.requests.length + 1, connection }
        buffered = buffered.subarray(end + 4 + length)
        origin.requests.push(request)
        answer(socket, request)
      }
    })
  }
  const server = options.tls !== undefined ? createTlsServer(options.tls, serve) : createNetServer(serve)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  origin.url = `${options.tls !== undefined ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}`
  t.teardown(async () => {
    for (const s of sockets) s.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return origin
}

/** undici's connections (and those of Node's fetch), by local port, from their first request on. */
const undiciSockets = new Map<number, Socket>()
subscribe('undici:client:sendHeaders', (message) => {
  const { socket } = message as { socket: Socket }
  const port = socket.localPort
  if (port === undefined || undiciSockets.get(port) === socket) return
  undiciSockets.set(port, socket)
  socket.once('close', () => { if (undiciSockets.get(port) === socket) undiciSockets.delete(port) })
})

/**
 * Writes each part on a connection to an undici client (TCP or TLS) once the client has read
 * the parts before it, so each part reaches the client in a read of its own. A peer that is
 * not an undici connection with a request sent destroys the connection (the test fails).
 */
export function writeApart (socket: Socket, parts: Array<string | Buffer>): void {
  const peer = undiciSockets.get(socket.remotePort ?? 0)
  if (peer === undefined) {
    socket.destroy(new Error('writeApart: the peer is not an undici connection that sent a request'))
    return
  }
  const write = async (): Promise<void> => {
    for (const part of parts) {
      const target = peer.bytesRead + Buffer.byteLength(part)
      socket.write(part)
      // The client's bytesRead grows in the same callback that hands the bytes to its stream.
      while (peer.bytesRead < target && !peer.destroyed) await new Promise((resolve) => setImmediate(resolve))
    }
  }
  write().catch((err: unknown) => socket.destroy(err as Error))
}
