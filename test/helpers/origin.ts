/**
 * A real origin HTTP server on a free port, closed on teardown. It records every request so
 * tests can assert what the origin saw (and how often).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Test } from 'tap'

export interface SeenRequest {
  method: string
  url: string
  headers: IncomingMessage['headers']
}

export interface Origin {
  url: string
  port: number
  requests: SeenRequest[]
  /** Requests seen for a path (with query), or all when omitted. */
  count(url?: string): number
  close(): Promise<void>
}

export type OriginHandler = (req: IncomingMessage, res: ServerResponse, n: number) => void | Promise<void>

export async function startOrigin (t: Test, handler: OriginHandler): Promise<Origin> {
  const requests: SeenRequest[] = []
  const sockets = new Set<Socket>()
  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers })
    Promise.resolve(handler(req, res, requests.length)).catch((err: unknown) => {
      res.destroy(err as Error)
    })
  })
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  let closed = false
  const close = async (): Promise<void> => {
    if (closed) return
    closed = true
    for (const s of sockets) s.destroy()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
  t.teardown(close)
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    count: (url) => (url === undefined ? requests.length : requests.filter((r) => r.url === url).length),
    close
  }
}

/** A handler answering JSON with the given headers. */
export function json (body: unknown, headers: Record<string, string | string[]> = {}, status = 200): OriginHandler {
  const text = JSON.stringify(body)
  return (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers })
    res.end(text)
  }
}
