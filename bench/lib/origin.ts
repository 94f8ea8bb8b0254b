/**
 * The origin the benchmarks put cachegate in front of: a product API answering ~1 KiB of
 * JSON per product, cacheable for an hour, optionally after a delay (a slow origin for the
 * stampede benchmark). It counts the requests it receives per path, which is how the
 * benchmarks prove that a run was all hits or that a stampede was coalesced.
 */
import { createHash } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import { HOST } from './processes.ts'

/** A JSON document of exactly 2048 bytes, different per id. */
export function body2k (id: string): Buffer {
  const doc = { id, kind: 'product', name: `Product ${id}`, price: { amount: 1000 + (id.length * 37), currency: 'EUR' }, pad: '' }
  const base = Buffer.byteLength(JSON.stringify(doc))
  doc.pad = 'x'.repeat(Math.max(0, 2048 - base))
  return Buffer.from(JSON.stringify(doc))
}

/** A product document of about 1 KiB, the same bytes for the same id. */
export function productBody (id: string): Buffer {
  const product = {
    id,
    sku: `SKU-${id.padStart(8, '0')}`,
    name: 'Cast-iron teapot, 1.2 l, enamelled interior',
    description: 'A heavy cast-iron teapot with an enamelled interior and a stainless steel infuser. Keeps tea hot for a long time; suitable for gas, electric and induction hobs.',
    brand: 'Ironleaf',
    price: { amount: 4900, currency: 'EUR', vatIncluded: true },
    availability: { status: 'in_stock', quantity: 37, warehouse: 'AMS-2', shipsWithinDays: 2 },
    categories: ['kitchen', 'tea', 'teapots'],
    attributes: { material: 'cast iron', colour: 'matte black', capacityMl: 1200, weightG: 2100, dishwasherSafe: false },
    images: [
      { url: `https://images.example.com/products/${id}/front.jpg`, width: 1200, height: 1200 },
      { url: `https://images.example.com/products/${id}/side.jpg`, width: 1200, height: 1200 }
    ],
    rating: { average: 4.6, count: 312 },
    related: [`${id}-infuser`, `${id}-trivet`, `${id}-cups`],
    shipping: { weightClass: 'heavy', freeAbove: { amount: 5000, currency: 'EUR' }, regions: ['NL', 'BE', 'DE', 'FR', 'LU', 'AT'] },
    updatedAt: '2025-01-15T10:30:00Z'
  }
  return Buffer.from(JSON.stringify(product))
}

/** The fields the origin sends with a product, besides content-length and date. */
export function productHeaders (body: Buffer): Record<string, string> {
  return {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'public, max-age=3600',
    etag: `"${createHash('sha1').update(body).digest('hex').slice(0, 16)}"`,
    'last-modified': 'Wed, 15 Jan 2025 10:30:00 GMT'
  }
}

export interface Origin {
  url: string
  port: number
  /** Requests received per path (query included). */
  readonly counts: Map<string, number>
  total(): number
  close(): Promise<void>
}

export interface OriginOptions {
  /** Answer this long after the request arrived (ms). */
  delayMs?: number
  /** The body for a path's last segment (default: productBody, about 1 KiB). */
  body?: (id: string) => Buffer
  /** Called with the path just before a response is sent (e.g. to read a gateway's CPU time at that moment). */
  onAnswer?: (path: string) => void
  /** Called with the path when a request arrives. */
  onReceive?: (path: string) => void
}

/** An origin in this process on a free port. Every path answers 200 with the product for its last segment. */
export async function startOrigin (options: OriginOptions = {}): Promise<Origin> {
  const counts = new Map<string, number>()
  const delay = options.delayMs ?? 0
  const makeBody = options.body ?? productBody
  const timers = new Set<NodeJS.Timeout>()
  const server: Server = createServer((req, res) => {
    const path = req.url ?? '/'
    counts.set(path, (counts.get(path) ?? 0) + 1)
    options.onReceive?.(path)
    const id = path.split('?')[0]?.split('/').pop() ?? '0'
    const body = makeBody(id === '' ? '0' : id)
    const answer = (): void => {
      options.onAnswer?.(path)
      res.writeHead(200, { ...productHeaders(body), 'content-length': String(body.length) })
      res.end(req.method === 'HEAD' ? undefined : body)
    }
    if (delay <= 0) {
      answer()
      return
    }
    const timer = setTimeout(() => {
      timers.delete(timer)
      answer()
    }, delay)
    timers.add(timer)
  })
  server.keepAliveTimeout = 60_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, HOST, resolve)
  })
  const address = server.address()
  if (address === null || typeof address !== 'object') throw new Error('origin: no address')
  return {
    url: `http://${HOST}:${address.port}`,
    port: address.port,
    counts,
    total: () => {
      let n = 0
      for (const c of counts.values()) n += c
      return n
    },
    close: async () => {
      for (const t of timers) clearTimeout(t)
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}
