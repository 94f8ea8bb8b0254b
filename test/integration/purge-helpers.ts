/**
 * Shared by the purge and L1 tests: an origin with tagged pages, and admin/gateway calls.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { request } from 'undici'
import type { GatewayHandle } from '../helpers/gateway.ts'

export const TOKEN = 'purge-test-token-0123456789'
export const SHOP = 'shop.example'
export const OTHER = 'other.example'

/**
 * Every path answers `<host><path> v<n>` (n: how often the origin saw that host and path),
 * fresh for 60 s with a 30 s stale-while-revalidate window. Tags: /products/<id> carries
 * Surrogate-Key `product-<id> products`; /categories/<id> carries Cache-Tag
 * `category-<id>, product-1`; /i18n varies on Accept-Language.
 */
export function catalog (): (req: IncomingMessage, res: ServerResponse) => void {
  const seen = new Map<string, number>()
  return (req, res) => {
    const host = req.headers['x-forwarded-host'] ?? ''
    const path = req.url ?? '/'
    const id = `${String(host)}${path}`
    const n = (seen.get(id) ?? 0) + 1
    seen.set(id, n)
    const body = `${id} v${n}`
    const headers: Record<string, string> = { 'content-type': 'text/plain', 'cache-control': 'max-age=60, stale-while-revalidate=30' }
    const product = /^\/products\/([^/?]+)/.exec(path)
    if (product !== null) headers['surrogate-key'] = `product-${product[1] ?? ''} products`
    const category = /^\/categories\/([^/?]+)/.exec(path)
    if (category !== null) headers['cache-tag'] = `category-${category[1] ?? ''}, product-1`
    if (path.startsWith('/i18n')) headers.vary = 'accept-language'
    res.writeHead(200, { ...headers, 'content-length': Buffer.byteLength(body) })
    res.end(req.method === 'HEAD' ? undefined : body)
  }
}

export interface PurgeReply {
  status: number
  body: Record<string, unknown>
}

export async function purge (gw: GatewayHandle, body: unknown, headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` }): Promise<PurgeReply> {
  const res = await request(`${gw.adminUrl}/purge`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body)
  })
  const text = await res.body.text()
  return { status: res.statusCode, body: JSON.parse(text) as Record<string, unknown> }
}

/** GET through the gateway as `host`; the store write is awaited so the next request sees it. */
export async function get (gw: GatewayHandle, host: string, path: string, headers: Record<string, string> = {}): Promise<Awaited<ReturnType<GatewayHandle['get']>>> {
  const reply = await gw.get(path, { host, ...headers })
  await gw.settled()
  return reply
}

export function isHit (reply: { header(name: string): string | undefined }): boolean {
  return /^cachegate; hit(;|$)/.test(reply.header('cache-status') ?? '') && !(reply.header('cache-status') ?? '').includes('fwd=')
}
