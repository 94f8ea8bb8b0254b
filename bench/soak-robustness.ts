/**
 * Robustness soak (issue 10): two gateway processes sharing one Redis, for SOAK_SECONDS
 * (default 60) after a warm-up, under a mix of
 *   - normal GETs of 200 cacheable items (every one must be answered 200 with the right body),
 *   - unique uncacheable URLs (no-store: each fills the hit-for-miss map once),
 *   - aborted uploads (Content-Length 100000, 3 bytes sent, then the client hangs up),
 *   - slow uploads (1 byte every 100 ms, completing well inside limits.requestBodyTimeout),
 *   - stalled uploads (3 bytes, then nothing: the gateway answers 408 after the body timeout),
 *   - Expect: 100-continue uploads (the body is sent after the 100).
 * It reports each gateway's V8 heap (after a full GC, through bench/servers/heap-probe.mjs) and
 * RSS at the start and end of the measured window, the requests the origin still has open at
 * the end (after the body timeout has passed: none may be pinned), and the counts per kind.
 *
 *   node --import tsx bench/soak-robustness.ts
 *
 * Before the measured window the per-key maps are filled to their bounds (src/bounded-map.ts:
 * hit-for-miss and the decision log hold 10,000 keys, the Redis key-hash cache 50,000), so the
 * window shows whether memory stays flat once they are full rather than how full they get:
 * SOAK_FILL unique uncacheable URLs per gateway (default 60000), then SOAK_WARMUP seconds of
 * the whole mix (default 10). Knobs: SOAK_SECONDS (default 60), SOAK_FILL, SOAK_WARMUP.
 * Loopback only; every loop is bounded by its count or the deadline and a per-request
 * timeout; everything started is killed at the end.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import net from 'node:net'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { Pool } from 'undici'
import { startGateway, type GatewayProc } from './lib/gateway.ts'
import { freePort, HOST, ROOT, sleep, startRedis } from './lib/processes.ts'
import { envInt } from './lib/table.ts'

const SECONDS = envInt('SOAK_SECONDS', 60, 5, 86_400)
const WARMUP = envInt('SOAK_WARMUP', 10, 1, 600)
const FILL = envInt('SOAK_FILL', 60_000, 0, 1_000_000)
const ITEMS = 200
const BODY_TIMEOUT_MS = 2000
const REQUEST_TIMEOUT_MS = 15_000

// ---------------------------------------------------------------------------------------------
// Origin: items (cacheable), unique URLs (no-store), uploads (read the whole body, then answer)

const itemBody = (n: number): string => `item ${n};`.repeat(20 + (n % 50))
const origin = { inFlight: 0, sockets: 0, requests: 0, uploadsCompleted: 0 }

function originHandler (req: IncomingMessage, res: ServerResponse): void {
  origin.requests++
  origin.inFlight++
  res.once('close', () => { origin.inFlight-- })
  const url = req.url ?? '/'
  if (req.method === 'POST') {
    let bytes = 0
    req.on('data', (c: Buffer) => { bytes += c.length })
    req.on('end', () => {
      origin.uploadsCompleted++
      const text = JSON.stringify({ bytes })
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
      res.end(text)
    })
    req.on('error', () => { res.destroy() })
    return
  }
  const item = /^\/items\/(\d+)$/.exec(url)
  if (item !== null) {
    const body = itemBody(Number(item[1]))
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), 'cache-control': 'public, max-age=5' })
    res.end(body)
    return
  }
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2, 'cache-control': 'no-store' })
  res.end('ok')
}

// ---------------------------------------------------------------------------------------------
// Clients

interface Counts { sent: number, answered: number, failed: number, statuses: Map<string, number> }
const counts = (): Counts => ({ sent: 0, answered: 0, failed: 0, statuses: new Map() })
const kinds = { normal: counts(), unique: counts(), aborted: counts(), slow: counts(), stalled: counts(), expect: counts() }
type Kind = keyof typeof kinds
const failures: string[] = []

function note (kind: Kind, status: string, ok: boolean): void {
  const c = kinds[kind]
  c.statuses.set(status, (c.statuses.get(status) ?? 0) + 1)
  if (ok) c.answered++
  else {
    c.failed++
    if (failures.length < 20) failures.push(`${kind}: ${status}`)
  }
}

/**
 * One raw HTTP/1.1 exchange on its own connection (Connection: close): `steps` write the
 * request; resolves with the status line's code ('closed' when the server hung up first,
 * 'timeout' past REQUEST_TIMEOUT_MS).
 */
async function raw (port: number, steps: (socket: net.Socket, onInterim: (cb: () => void) => void) => Promise<void>): Promise<string> {
  return await new Promise((resolve) => {
    const socket = net.connect(port, HOST)
    let text = ''
    let interim: (() => void) | undefined
    const done = (status: string): void => {
      clearTimeout(timer)
      socket.destroy()
      resolve(status)
    }
    const timer = setTimeout(() => done('timeout'), REQUEST_TIMEOUT_MS)
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1')
      while (text.startsWith('HTTP/1.1 100')) {
        const end = text.indexOf('\r\n\r\n')
        if (end < 0) return
        text = text.slice(end + 4)
        interim?.()
      }
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text)
      if (m !== null && text.includes('\r\n\r\n')) done(m[1] ?? '?')
    })
    socket.on('error', () => done('closed'))
    socket.on('close', () => done('closed'))
    socket.once('connect', () => {
      steps(socket, (cb) => { interim = cb }).catch(() => done('closed'))
    })
  })
}

const head = (path: string, length: number, extra = ''): string =>
  `POST ${path} HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${length}\r\nConnection: close\r\n${extra}\r\n`

async function abortedUpload (port: number, n: number): Promise<void> {
  kinds.aborted.sent++
  await new Promise<void>((resolve) => {
    const socket = net.connect(port, HOST, () => {
      socket.write(head(`/upload/aborted-${n}`, 100_000) + 'abc', () => {
        setTimeout(() => { socket.destroy(); resolve() }, 20)
      })
    })
    socket.on('error', () => resolve())
  })
  note('aborted', 'hung up', true)
}

async function slowUpload (port: number, n: number): Promise<void> {
  kinds.slow.sent++
  const status = await raw(port, async (socket) => {
    socket.write(head(`/upload/slow-${n}`, 12))
    for (let i = 0; i < 12; i++) {
      await sleep(100)
      socket.write('x')
    }
  })
  note('slow', status, status === '200')
}

async function stalledUpload (port: number, n: number): Promise<void> {
  kinds.stalled.sent++
  const status = await raw(port, async (socket) => { socket.write(head(`/upload/stalled-${n}`, 100_000) + 'abc') })
  note('stalled', status, status === '408')
}

async function expectUpload (port: number, n: number): Promise<void> {
  kinds.expect.sent++
  const body = 'e'.repeat(2000)
  const status = await raw(port, async (socket, onInterim) => {
    onInterim(() => { socket.write(body) })
    socket.write(head(`/upload/expect-${n}`, body.length, 'Expect: 100-continue\r\n'))
  })
  note('expect', status, status === '200')
}

async function get (pool: Pool, kind: 'normal' | 'unique', path: string, expected: string | undefined): Promise<void> {
  kinds[kind].sent++
  try {
    const res = await pool.request({ path, method: 'GET', headersTimeout: REQUEST_TIMEOUT_MS, bodyTimeout: REQUEST_TIMEOUT_MS })
    const text = await res.body.text()
    const ok = res.statusCode === 200 && (expected === undefined || text === expected)
    note(kind, ok || res.statusCode !== 200 ? String(res.statusCode) : 'wrong body', ok)
  } catch (err) {
    note(kind, (err as { code?: string }).code ?? 'error', false)
  }
}

// ---------------------------------------------------------------------------------------------
// Memory

interface Memory { usedHeap: number, rss: number }
async function memory (probePort: number): Promise<Memory> {
  const pool = new Pool(`http://${HOST}:${probePort}`)
  try {
    const res = await pool.request({ path: '/heap', method: 'GET' })
    return await res.body.json() as Memory
  } finally {
    await pool.close()
  }
}

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`
const change = (a: number, b: number): string => `${b >= a ? '+' : ''}${(((b - a) / a) * 100).toFixed(1)} %`

// ---------------------------------------------------------------------------------------------

async function main (): Promise<void> {
  const originServer = createServer({ keepAliveTimeout: 5000 }, originHandler)
  originServer.on('connection', (socket) => {
    origin.sockets++
    socket.once('close', () => { origin.sockets-- })
  })
  await new Promise<void>((resolve) => originServer.listen(0, HOST, resolve))
  const address = originServer.address()
  const originUrl = `http://${HOST}:${typeof address === 'object' && address !== null ? address.port : 0}`
  const redis = await startRedis(undefined)
  const probeArgs = ['--expose-gc', '--import', pathToFileURL(join(ROOT, 'bench', 'servers', 'heap-probe.mjs')).href]
  const gateways: Array<{ g: GatewayProc, probe: number, pool: Pool }> = []
  for (const name of ['gateway-a', 'gateway-b']) {
    const probe = await freePort()
    const g = await startGateway({
      name,
      origin: originUrl,
      redisUrl: redis.url,
      keyPrefix: 'soak-robust:',
      limits: { requestBodyTimeout: `${BODY_TIMEOUT_MS}ms` },
      nodeArgs: probeArgs,
      env: { BENCH_PROBE_PORT: String(probe) }
    })
    gateways.push({ g, probe, pool: new Pool(g.url, { connections: 16 }) })
  }
  process.stderr.write(`two gateways on one Redis; warm-up ${WARMUP} s, then ${SECONDS} s measured\n`)

  let n = 0
  // Fill: unique uncacheable URLs, FILL per gateway, 32 at a time.
  const fillStart = Date.now()
  let next = 0
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (next < FILL * 2) {
      const i = next++
      const g = gateways[i % 2]
      if (g !== undefined) await get(g.pool, 'unique', `/fill/${i}`, undefined)
    }
  }))
  process.stderr.write(`filled: ${FILL} unique URLs per gateway in ${((Date.now() - fillStart) / 1000).toFixed(0)} s\n`)
  let stopAt = Date.now() + WARMUP * 1000
  const loop = async (work: (i: number) => Promise<void>): Promise<void> => {
    while (Date.now() < stopAt) await work(n++)
  }
  const mix = (): Array<Promise<void>> => {
    const at = (i: number): { pool: Pool, port: number } => {
      const g = gateways[i % 2]
      if (g === undefined) throw new Error('no gateway')
      return { pool: g.pool, port: g.g.port }
    }
    return [
      ...Array.from({ length: 12 }, async () => await loop(async (i) => { const item = i % ITEMS; await get(at(i).pool, 'normal', `/items/${item}`, itemBody(item)) })),
      ...Array.from({ length: 4 }, async () => await loop(async (i) => { await get(at(i).pool, 'unique', `/unique/${i}-${'u'.repeat(i % 200)}?q=${i}`, undefined) })),
      ...Array.from({ length: 2 }, async () => await loop(async (i) => { await abortedUpload(at(i).port, i) })),
      ...Array.from({ length: 3 }, async () => await loop(async (i) => { await slowUpload(at(i).port, i) })),
      ...Array.from({ length: 2 }, async () => await loop(async (i) => { await stalledUpload(at(i).port, i) })),
      ...Array.from({ length: 2 }, async () => await loop(async (i) => { await expectUpload(at(i).port, i) }))
    ]
  }

  await Promise.all(mix())
  for (const c of Object.values(kinds)) { c.sent = 0; c.answered = 0; c.failed = 0; c.statuses.clear() }
  failures.length = 0
  const start = await Promise.all(gateways.map(async (g) => await memory(g.probe)))
  const began = Date.now()
  stopAt = began + SECONDS * 1000
  await Promise.all(mix())
  const seconds = (Date.now() - began) / 1000
  // Stalled uploads still open are freed by the body timeout: wait it out, then look.
  await sleep(BODY_TIMEOUT_MS + 1000)
  const end = await Promise.all(gateways.map(async (g) => await memory(g.probe)))
  const pinned = origin.inFlight
  const socketsOpen = origin.sockets
  const t0 = Date.now()
  await Promise.all(gateways.map(async (g, i) => { await get(g.pool, 'unique', `/unique/final-${i}`, undefined) }))
  const finalMissMs = Date.now() - t0

  const out: string[] = []
  out.push(`Robustness soak: ${seconds.toFixed(0)} s measured after ${FILL} unique URLs per gateway and ${WARMUP} s of warm-up, two gateways (Redis store, one redis-server), requestBodyTimeout ${BODY_TIMEOUT_MS} ms`)
  out.push('')
  out.push('| gateway | V8 heap after GC, start | end | change | RSS start | RSS end | change |')
  out.push('| --- | --- | --- | --- | --- | --- | --- |')
  gateways.forEach((_g, i) => {
    const a = start[i]
    const b = end[i]
    if (a === undefined || b === undefined) return
    out.push(`| ${i === 0 ? 'a' : 'b'} | ${mib(a.usedHeap)} | ${mib(b.usedHeap)} | ${change(a.usedHeap, b.usedHeap)} | ${mib(a.rss)} | ${mib(b.rss)} | ${change(a.rss, b.rss)} |`)
  })
  out.push('')
  out.push('| kind | sent | answered as expected | other | statuses |')
  out.push('| --- | --- | --- | --- | --- |')
  for (const [kind, c] of Object.entries(kinds)) {
    out.push(`| ${kind} | ${c.sent} | ${c.answered} | ${c.failed} | ${[...c.statuses].map(([s, k]) => `${s}: ${k}`).join(', ')} |`)
  }
  out.push('')
  out.push(`Origin: ${origin.requests} requests in all, ${origin.uploadsCompleted} uploads read to the end; at the end ${pinned} request(s) still open (pinned), ${socketsOpen} idle keep-alive connection(s); a new miss on each gateway answered in ${finalMissMs} ms.`)
  const heapOk = start.every((a, i) => { const b = end[i]; return b !== undefined && b.usedHeap <= a.usedHeap * 1.1 })
  const verdict = [
    heapOk ? 'heap within 10 %' : 'HEAP GREW MORE THAN 10 %',
    pinned === 0 ? 'no pinned origin requests' : `${pinned} PINNED ORIGIN REQUESTS`,
    kinds.normal.failed === 0 ? 'every normal request answered' : `${kinds.normal.failed} NORMAL REQUESTS FAILED`
  ]
  out.push(`Verdict: ${verdict.join('; ')}.`)
  if (failures.length > 0) out.push(`First failures: ${failures.join('; ')}`)
  process.stdout.write(out.join('\n') + '\n')

  for (const g of gateways) await g.pool.close()
  await Promise.all(gateways.map(async (g) => await g.g.stop()))
  await redis.proc.stop(2000)
  originServer.closeAllConnections()
  originServer.close()
  process.exitCode = heapOk && pinned === 0 && kinds.normal.failed === 0 ? 0 : 1
}

await main()
