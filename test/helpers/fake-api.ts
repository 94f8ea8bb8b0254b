/**
 * A real HTTP server standing in for a provider's API (CDN purge endpoints): records every
 * request with its raw body, answers with whatever the test scripted (default 200 `{}`),
 * and lets a test await the n-th request instead of sleeping. Closed on teardown.
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Test } from 'tap'

export interface ApiCall {
  method: string
  url: string
  headers: IncomingHttpHeaders
  body: string
}

export type Responder = (call: ApiCall, res: ServerResponse, n: number) => void | Promise<void>

export interface FakeApi {
  url: string
  port: number
  calls: ApiCall[]
  /** Answers the next requests in turn with these; afterwards with `fallback`. */
  script(...responders: Responder[]): void
  fallback: Responder
  /** Resolves when at least `n` requests have been answered. */
  answered(n: number): Promise<void>
  close(): Promise<void>
}

export function reply (status: number, body: unknown = {}, headers: Record<string, string> = {}): Responder {
  return (_call, res) => {
    const text = typeof body === 'string' ? body : JSON.stringify(body)
    res.writeHead(status, { 'content-type': typeof body === 'string' ? 'text/plain' : 'application/json', ...headers })
    res.end(text)
  }
}

export async function startFakeApi (t: Test, fallback: Responder = reply(200, { success: true })): Promise<FakeApi> {
  const calls: ApiCall[] = []
  const scripted: Responder[] = []
  const sockets = new Set<Socket>()
  let done = 0
  const waiters: Array<{ n: number, resolve: () => void }> = []
  const api: FakeApi = {
    url: '',
    port: 0,
    calls,
    script: (...responders) => { scripted.push(...responders) },
    fallback,
    answered: async (n) => {
      if (done >= n) return
      await new Promise<void>((resolve) => waiters.push({ n, resolve }))
    },
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const call: ApiCall = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') }
      calls.push(call)
      const responder = scripted.shift() ?? api.fallback
      res.on('finish', () => {
        done++
        for (const w of [...waiters]) {
          if (done >= w.n) {
            waiters.splice(waiters.indexOf(w), 1)
            w.resolve()
          }
        }
      })
      Promise.resolve(responder(call, res, calls.length)).catch((err: unknown) => res.destroy(err as Error))
    })
  })
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  api.port = (server.address() as { port: number }).port
  api.url = `http://127.0.0.1:${api.port}`
  t.teardown(async () => await api.close().catch(() => undefined))
  return api
}
