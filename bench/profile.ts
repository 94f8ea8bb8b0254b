/**
 * CPU profile of one gateway's hit path under the limit.ts load (issue 12): the gateway runs
 * with --cpu-prof, is primed with the warm keys, takes wrk load for a while, then stops and
 * writes its .cpuprofile; this prints the functions with the most self time and the share of
 * some groups (HTTP writing, the store read, the body seal, metrics, key resolution).
 *
 *   node --import tsx bench/profile.ts memory|redis|redis-l1 [seconds]
 *   node --import tsx bench/profile.ts stampede      (memory store: 5 × 200 GETs on one cold key, origin 200 ms)
 *
 * The profile is kept in bench/results/profiles/ (open it in Chrome DevTools).
 */
import { readdirSync, readFileSync } from 'node:fs'
import { Pool } from 'undici'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { startGateway } from './lib/gateway.ts'
import { isHit, sample } from './lib/load.ts'
import { startOrigin } from './lib/origin.ts'
import { allowedCpus, pinProcessTo, ROOT, startRedis } from './lib/processes.ts'
import { body2k } from './lib/origin.ts'
import { randomLoad } from './lib/wrk.ts'

interface ProfileNode { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, children?: number[] }
interface Profile { nodes: ProfileNode[], samples: number[], timeDeltas: number[] }

const which = process.argv[2] ?? 'memory'
if (!['memory', 'redis', 'redis-l1', 'stampede'].includes(which)) throw new Error('usage: profile.ts memory|redis|redis-l1|stampede [seconds]')
const seconds = Math.min(120, Math.max(1, Number(process.argv[3] ?? 10)))
const cpus = allowedCpus()
const server = cpus.length > 1 ? String(cpus[cpus.length - 1]) : ''
const loadgen = cpus.length > 1 ? String(cpus[0]) : ''
if (loadgen !== '') pinProcessTo(loadgen)

const dir = join(ROOT, 'bench', 'results', 'profiles', `${which}-${Date.now()}`)
await mkdir(dir, { recursive: true })
const origin = await startOrigin({ body: body2k, ...(which === 'stampede' ? { delayMs: 200 } : {}) })
const redis = which === 'memory' || which === 'stampede' ? undefined : await startRedis(loadgen)
const g = await startGateway({
  name: `profile/${which}`,
  origin: origin.url,
  cpus: server,
  nodeArgs: ['--cpu-prof', '--cpu-prof-dir', dir],
  ...(redis !== undefined ? { redisUrl: redis.url, keyPrefix: 'profile:' } : {}),
  ...(which === 'redis-l1' ? { l1: true } : {})
})
try {
  if (which === 'stampede') {
    const pool = new Pool(g.url, { connections: 200, pipelining: 1 })
    const get = async (path: string): Promise<number> => {
      const t0 = performance.now()
      const res = await pool.request({ method: 'GET', path })
      await res.body.arrayBuffer()
      return performance.now() - t0
    }
    await get('/items/warm')
    await Promise.all(Array.from({ length: 200 }, async () => await get('/items/warm')))
    for (let round = 0; round < 5; round++) {
      const ms = (await Promise.all(Array.from({ length: 200 }, async () => await get(`/items/cold-${round}`)))).sort((a, b) => a - b)
      process.stdout.write(`stampede ${round + 1}: p50 ${ms[100]?.toFixed(1) ?? '?'} ms, max ${ms[199]?.toFixed(1) ?? '?'} ms, origin ${origin.counts.get(`/items/cold-${round}`) ?? 0}\n`)
    }
    await pool.close()
  }
  const paths = Array.from({ length: 1000 }, (_v, i) => `/items/${i}`)
  for (const p of which === 'stampede' ? [] : paths) {
    for (let i = 0; i < 20; i++) if (isHit(await sample(g.url + p))) break
  }
  const r = which === 'stampede' ? undefined : await randomLoad({ url: g.url, paths, connections: 64, durationS: seconds, cpus: loadgen, watch: { server: g.proc.pid } })
  if (r !== undefined) process.stdout.write(`${which}: ${Math.round(r.rps)} req/s, p99 ${r.p99.toFixed(2)} ms, server CPU ${Math.round((r.cpu.server ?? 0) * 100)}%, ${r.non2xx} errors\n`)
} finally {
  await g.stop()
  await redis?.proc.stop()
  await origin.close()
}

const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'))
if (file === undefined) throw new Error(`no profile in ${dir}`)
const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Profile
const byId = new Map(profile.nodes.map((n) => [n.id, n]))
const parent = new Map<number, number>()
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
const self = new Map<number, number>()
let total = 0
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0
  self.set(id, (self.get(id) ?? 0) + dt)
  total += dt
})
const label = (n: ProfileNode): string => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.replace(/^.*\/(node_modules|dist)\//, '$1/').replace(/^node:/, '')}:${n.callFrame.lineNumber + 1}`
const selfBy = new Map<string, number>()
for (const [id, t] of self) {
  const n = byId.get(id)
  if (n !== undefined) selfBy.set(label(n), (selfBy.get(label(n)) ?? 0) + t)
}
const idle = [...selfBy].filter(([k]) => k.startsWith('(idle)')).reduce((a, [, t]) => a + t, 0)
const busy = total - idle
process.stdout.write(`\nself time, share of busy time (${(busy / 1000).toFixed(0)} ms busy of ${(total / 1000).toFixed(0)} ms):\n`)
for (const [k, t] of [...selfBy].filter(([k]) => !k.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, 30)) {
  process.stdout.write(`${(t * 100 / busy).toFixed(1).padStart(5)}%  ${k}\n`)
}
// Inclusive time of groups: a sample counts for a group when any frame on its stack matches.
const groups: Record<string, RegExp> = {
  'fast path handle (all)': /^handle .*fast-hit/,
  'FastHit #send': /#send .*fast-hit/,
  writeHead: /^writeHead /,
  'res.end / write': /^end .*_http_outgoing|^write_ /,
  'store peek/lookup': /^(peek|lookup|#read|#problem) .*store\//,
  'body seal (crc32 / bodyProblem)': /^(bodyProblem|crc32) /,
  'metrics.request': /^request .*metrics/,
  onOutcome: /onOutcome/,
  decide: /^decide .*policy/,
  formatCacheStatus: /^formatCacheStatus /,
  'ioredis (all)': /node_modules\/ioredis/,
  'DecodedEntries.read': /^read .*store\/redis/,
  'http parser': /parserOnHeadersComplete|parserOnIncoming/,
  GC: /^\(garbage collector\)/
}
const inclusive = new Map<string, number>()
profile.samples.forEach((id, i) => {
  const dt = profile.timeDeltas[i] ?? 0
  const seen = new Set<string>()
  for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
    const n = byId.get(at)
    if (n === undefined) break
    const l = label(n)
    for (const [g, re] of Object.entries(groups)) if (!seen.has(g) && re.test(l)) seen.add(g)
  }
  for (const g of seen) inclusive.set(g, (inclusive.get(g) ?? 0) + dt)
})
process.stdout.write('\ninclusive time of groups, share of busy time:\n')
for (const g of Object.keys(groups)) process.stdout.write(`${((inclusive.get(g) ?? 0) * 100 / busy).toFixed(1).padStart(5)}%  ${g}\n`)
process.stdout.write(`\nprofile: ${join(dir, file)}\n`)
