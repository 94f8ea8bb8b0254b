/**
 * Reference for the stampede: a bare node:http server that does what a perfect coalescing
 * cache would, with none of the work. The first request for a path starts a timer of the
 * origin's latency (BENCH_HOLD_MS); every request for that path that arrives meanwhile is held,
 * and when the timer fires all of them are answered with the same 2 KiB body; later requests
 * for the path are answered at once. Its stampede latency is the floor this machine, this
 * client and node:http allow; the gateway's distance from it is the gateway's own cost.
 */
import { createServer, type ServerResponse } from 'node:http'

const port = Number(process.env.BENCH_PORT)
const hold = Number(process.env.BENCH_HOLD_MS)
if (!Number.isInteger(port) || !Number.isFinite(hold)) throw new Error('BENCH_PORT and BENCH_HOLD_MS must be set')
const body = Buffer.from(JSON.stringify({ id: 'held', pad: 'x'.repeat(2020) }))
const headers = { 'content-type': 'application/json', 'cache-control': 'public, max-age=3600', 'content-length': String(body.length), 'cache-status': 'bare-hold' }
const waiting = new Map<string, ServerResponse[]>()
const done = new Set<string>()

const server = createServer((req, res) => {
  const path = req.url ?? '/'
  if (done.has(path)) {
    res.writeHead(200, headers)
    res.end(body)
    return
  }
  let held = waiting.get(path)
  if (held === undefined) {
    held = []
    waiting.set(path, held)
    setTimeout(() => {
      waiting.delete(path)
      done.add(path)
      for (const r of held ?? []) {
        r.writeHead(200, headers)
        r.end(body)
      }
    }, hold)
  }
  held.push(res)
})
server.keepAliveTimeout = 72_000
server.listen(port, '127.0.0.1')
process.on('SIGTERM', () => server.close(() => process.exit(0)))
