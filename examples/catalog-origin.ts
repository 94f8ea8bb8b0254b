/**
 * A small product-catalog API to put cachegate in front of. Responses carry Cache-Control,
 * ETag and Surrogate-Key like a real catalog would; every request is logged so you can see
 * which ones reached the origin.
 *
 *   PORT=3000 node --import tsx examples/catalog-origin.ts
 */
import { createHash } from 'node:crypto'
import { createServer } from 'node:http'

const products = new Map<number, { id: number, name: string, price: number, currency: string }>([
  [1, { id: 1, name: 'Cast-iron teapot', price: 49, currency: 'EUR' }],
  [2, { id: 2, name: 'Espresso cups (set of 4)', price: 24, currency: 'EUR' }],
  [3, { id: 3, name: 'Pour-over kettle', price: 65, currency: 'EUR' }]
])

export function startCatalogOrigin (port: number, host = '127.0.0.1', log: (line: string) => void = (l) => process.stdout.write(l + '\n')): ReturnType<typeof createServer> {
  let served = 0
  const server = createServer((req, res) => {
    served++
    const url = new URL(req.url ?? '/', 'http://origin')
    log(`[origin] #${served} ${req.method ?? ''} ${url.pathname}${url.search}`)
    const send = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      const text = JSON.stringify(body)
      const etag = `"${createHash('sha1').update(text).digest('hex').slice(0, 16)}"`
      if (req.headers['if-none-match'] === etag) {
        res.writeHead(304, { etag, ...headers })
        res.end()
        return
      }
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), etag, ...headers })
      res.end(req.method === 'HEAD' ? undefined : text)
    }
    if (req.method === 'PUT' && url.pathname.startsWith('/products/')) {
      const id = Number(url.pathname.split('/')[2])
      let body = ''
      req.on('data', (c: Buffer) => { body += c.toString() })
      req.on('end', () => {
        try {
          const update = JSON.parse(body) as { price?: number, name?: string }
          const p = products.get(id)
          if (p === undefined) return send(404, { error: 'not found' })
          products.set(id, { ...p, ...update })
          send(200, products.get(id))
        } catch {
          send(400, { error: 'invalid JSON' })
        }
      })
      return
    }
    if (url.pathname === '/products') {
      send(200, [...products.values()], { 'cache-control': 'public, max-age=30, stale-while-revalidate=60', 'surrogate-key': 'products' })
      return
    }
    const m = /^\/products\/(\d+)$/.exec(url.pathname)
    if (m !== null) {
      const p = products.get(Number(m[1]))
      if (p === undefined) {
        send(404, { error: 'not found' }, { 'cache-control': 'max-age=10' })
        return
      }
      send(200, p, { 'cache-control': 'public, max-age=60, stale-while-revalidate=30, stale-if-error=300', 'surrogate-key': `products product-${p.id}` })
      return
    }
    if (url.pathname === '/cart') {
      send(200, { items: [] }, { 'cache-control': 'private, no-store', 'set-cookie': 'session=abc; HttpOnly' })
      return
    }
    send(404, { error: 'not found' })
  })
  server.listen(port, host)
  return server
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  const port = Number(process.env.PORT ?? 3000)
  startCatalogOrigin(port, process.env.HOST ?? '127.0.0.1')
  process.stdout.write(`catalog origin on http://127.0.0.1:${port}\n`)
}
