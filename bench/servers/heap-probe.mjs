/**
 * Heap probe, preloaded into a server under test with
 *   node --expose-gc --import ./bench/servers/heap-probe.mjs <server>
 * and BENCH_PROBE_PORT=<port>. Plain JavaScript so it loads into the compiled gateway
 * (dist/) as well as into tsx-run servers. It listens on its own loopback port:
 *
 *   GET /start  full GC, then starts counting: v8.GCProfiler records every GC
 *   GET /stop   bytes allocated on the V8 heap since /start, GC count and time, then a full GC
 *               and the heap left
 *   GET /heap   full GC, then the heap statistics (for a soak: is the heap flat?)
 *   GET /profile-start         starts a CPU profile (node:inspector), so a profile can leave out
 *                              start-up and priming
 *   GET /profile-stop?file=F   stops it and writes the .cpuprofile to F (absolute path)
 *
 * Bytes allocated over a window = (used heap at the end - used heap at the start)
 *                                 + the sum over every GC in between of (used before - used after).
 * Every byte allocated is either still in the heap at the end or was freed by one of those GCs,
 * so this is exact for the V8 heap (JS objects, strings, small Buffers' JS wrappers). Buffer
 * and ArrayBuffer backing stores live outside the V8 heap; their net change is reported as
 * external memory, not as allocation.
 */
import { writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { Session } from 'node:inspector'
import v8 from 'node:v8'

const port = Number(process.env.BENCH_PROBE_PORT)
const gc = globalThis.gc

function collect () {
  if (typeof gc === 'function') {
    gc()
    gc()
  }
  return v8.getHeapStatistics()
}

if (Number.isInteger(port) && port > 0) {
  let profiler
  let start
  let session
  const post = (method, params) => new Promise((resolve, reject) => {
    session.post(method, params, (err, result) => { if (err) reject(err); else resolve(result) })
  })
  const server = createServer((req, res) => {
    let body
    const url = new URL(req.url ?? '/', 'http://probe')
    if (url.pathname === '/profile-start' || url.pathname === '/profile-stop') {
      const reply = (status, value) => {
        const text = JSON.stringify(value)
        res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
        res.end(text)
      }
      const file = url.searchParams.get('file')
      const work = url.pathname === '/profile-start'
        ? (async () => {
            session ??= new Session()
            session.connect()
            await post('Profiler.enable')
            await post('Profiler.start')
            return { started: true }
          })()
        : (async () => {
            if (session === undefined || file === null) throw new Error('no profile running, or no ?file=')
            const { profile } = await post('Profiler.stop')
            session.disconnect()
            writeFileSync(file, JSON.stringify(profile))
            return { file }
          })()
      work.then((v) => reply(200, v), (err) => reply(500, { error: String(err) }))
      return
    }
    if (req.url === '/start') {
      profiler?.stop()
      start = collect()
      profiler = new v8.GCProfiler()
      profiler.start()
      body = { usedHeap: start.used_heap_size, forcedGc: typeof gc === 'function' }
    } else if (req.url === '/stop' && profiler !== undefined && start !== undefined) {
      const end = v8.getHeapStatistics()
      const data = profiler.stop()
      profiler = undefined
      let freed = 0
      let gcMs = 0
      for (const s of data.statistics) {
        freed += s.beforeGC.heapStatistics.usedHeapSize - s.afterGC.heapStatistics.usedHeapSize
        gcMs += s.cost / 1000
      }
      const after = collect()
      body = {
        allocated: end.used_heap_size - start.used_heap_size + freed,
        gcs: data.statistics.length,
        gcMs,
        usedHeapAfterGc: after.used_heap_size,
        externalDelta: after.external_memory - start.external_memory
      }
    } else if (req.url === '/heap') {
      const h = collect()
      body = { usedHeap: h.used_heap_size, totalHeap: h.total_heap_size, external: h.external_memory, rss: process.memoryUsage.rss() }
    } else {
      res.writeHead(404).end()
      return
    }
    const text = JSON.stringify(body)
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
    res.end(text)
  })
  server.listen(port, '127.0.0.1')
  // The probe never keeps the server under test alive.
  server.unref()
}
