/**
 * The cachegate process as an orchestrator runs it: `node --import tsx src/main.ts`, with
 * signals (SIGTERM, SIGINT, SIGHUP) and worker processes.
 */
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { request as httpRequest } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { json, startOrigin } from '../helpers/origin.ts'
import { freePort, startRedis } from '../helpers/redis.ts'
import { CORRUPTIONS } from '../helpers/corrupt.ts'
import { Scrape } from '../helpers/prometheus.ts'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const TOKEN = 'process-test-token'
/** Starting a gateway through tsx on a busy machine takes seconds; a worker restart too. */
const WAIT_MS = 60_000

interface LogLine { msg?: string, [field: string]: unknown }

interface Proc {
  child: ChildProcess
  port: number
  adminPort: number
  logs: LogLine[]
  stderr: () => string
  /** Resolves with the first log line (already seen or still to come) that matches; rejects after WAIT_MS. */
  waitForLog: (match: (l: LogLine) => boolean, what: string) => Promise<LogLine>
  exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  /** Replaces the config file (read again on SIGHUP). */
  write: (config: string) => Promise<void>
}

function configYaml (routes: string, extra = ''): string {
  return `listen: { host: 127.0.0.1, port: 8080 }
admin: { host: 127.0.0.1, port: 9091, token: ${TOKEN} }
shutdownTimeout: 10s
${extra}routes:
${routes}`
}

async function startProcess (t: Test, config: string, args: string[] = []): Promise<Proc> {
  const dir = await mkdtemp(join(tmpdir(), 'cachegate-process-'))
  const file = join(dir, 'routes.yaml')
  await writeFile(file, config)
  const port = await freePort()
  const adminPort = await freePort()
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', '--config', file, ...args], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port), ADMIN_PORT: String(adminPort), LOG_LEVEL: 'info', NODE_ENV: 'production', WORKERS: '' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const logs: LogLine[] = []
  const waiters = new Set<(l: LogLine) => void>()
  let pending = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    pending += chunk.toString()
    const lines = pending.split('\n')
    pending = lines.pop() ?? ''
    for (const text of lines) {
      if (text.trim() === '') continue
      let line: LogLine
      try {
        line = JSON.parse(text) as LogLine
      } catch {
        line = { msg: text }
      }
      logs.push(line)
      for (const w of waiters) w(line)
    }
  })
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const exited = new Promise<{ code: number | null, signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
    await rm(dir, { recursive: true, force: true })
  })
  const waitForLog = async (match: (l: LogLine) => boolean, what: string): Promise<LogLine> => {
    const seen = logs.find(match)
    if (seen !== undefined) return seen
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(check)
        reject(new Error(`no log line ${what} within ${WAIT_MS} ms; stderr:\n${stderr}\nlogs:\n${logs.map((l) => JSON.stringify(l)).join('\n')}`))
      }, WAIT_MS)
      const check = (l: LogLine): void => {
        if (!match(l)) return
        clearTimeout(timer)
        waiters.delete(check)
        resolve(l)
      }
      waiters.add(check)
      exited.then(() => {
        if (!waiters.has(check)) return
        clearTimeout(timer)
        waiters.delete(check)
        reject(new Error(`the process exited before logging ${what}; stderr:\n${stderr}`))
      }, () => undefined)
    })
  }
  const proc: Proc = { child, port, adminPort, logs, stderr: () => stderr, waitForLog, exited, write: async (text) => await writeFile(file, text) }
  await waitForLog((l) => l.msg === 'cachegate listening', '"cachegate listening"')
  return proc
}

/** One request on a connection of its own (so worker processes take turns), body read whole. */
async function get (port: number, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<{ status: number, body: string }> {
  return await new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method, headers, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

function gate (): { open: () => void, opened: Promise<void>, arrived: Promise<void>, arrive: () => void } {
  let open!: () => void
  let arrive!: () => void
  const opened = new Promise<void>((resolve) => { open = resolve })
  const arrived = new Promise<void>((resolve) => { arrive = resolve })
  return { open, opened, arrived, arrive }
}

t.test('SIGTERM during a slow in-flight request lets it complete, refuses new work, then exits 0', async (t) => {
  const g = gate()
  const origin = await startOrigin(t, async (req, res) => {
    g.arrive()
    await g.opened
    json({ slow: 'done' }, { 'cache-control': 'max-age=60' })(req, res, 0)
  })
  const p = await startProcess(t, configYaml(`  - { name: main, path: /, origin: "${origin.url}" }\n`))
  const inFlight = get(p.port, '/slow')
  await g.arrived
  p.child.kill('SIGTERM')
  await p.waitForLog((l) => l.msg === 'shutting down: finishing in-flight requests', 'about shutting down')
  const ready = await get(p.adminPort, '/readyz')
  t.equal(ready.status, 503, '/readyz says not ready while draining')
  t.match(JSON.parse(ready.body), { status: 'not-ready', checks: { listener: 'stopping' } })
  await t.rejects(get(p.port, '/other'), 'no new connections are accepted')
  g.open()
  const reply = await inFlight
  t.equal(reply.status, 200)
  t.equal(reply.body, '{"slow":"done"}', 'the in-flight request got its whole answer')
  t.same(await p.exited, { code: 0, signal: null }, 'the process exits 0')
  t.ok(p.logs.some((l) => l.msg === 'stopped'))
})

t.test('a second signal during shutdown exits at once', async (t) => {
  const g = gate()
  const origin = await startOrigin(t, async (req, res) => {
    g.arrive()
    await g.opened
    json({})(req, res, 0)
  })
  t.teardown(() => g.open())
  const p = await startProcess(t, configYaml(`  - { name: main, path: /, origin: "${origin.url}" }\n`))
  const inFlight = get(p.port, '/held').catch((err: unknown) => err)
  await g.arrived
  p.child.kill('SIGINT')
  await p.waitForLog((l) => l.msg === 'shutting down: finishing in-flight requests', 'about shutting down')
  p.child.kill('SIGINT')
  t.same(await p.exited, { code: 1, signal: null }, 'exit 1 without waiting for the held request')
  t.ok(p.logs.some((l) => l.msg === 'second signal: exiting now'))
  t.type(await inFlight, Error, 'the held request was cut')
})

t.test('SIGHUP with a valid file changes routing; with an invalid file logs the problems and keeps the old routes', async (t) => {
  const a = await startOrigin(t, json({ from: 'a' }))
  const b = await startOrigin(t, json({ from: 'b' }))
  const p = await startProcess(t, configYaml(`  - { name: one, path: /, origin: "${a.url}" }\n`))
  t.equal((await get(p.port, '/api/x')).body, '{"from":"a"}')

  await p.write(configYaml(`  - { name: api, path: /api, origin: "${b.url}" }\n  - { name: rest, path: /, origin: "${a.url}" }\n`))
  p.child.kill('SIGHUP')
  await p.waitForLog((l) => l.msg === 'configuration reloaded', '"configuration reloaded"')
  t.equal((await get(p.port, '/api/x')).body, '{"from":"b"}', 'the new route serves /api')
  t.equal((await get(p.port, '/x')).body, '{"from":"a"}')

  await p.write(configYaml('  - { name: api, path: /api, origin: "not a url" }\n'))
  p.child.kill('SIGHUP')
  const refused = await p.waitForLog((l) => String(l.msg).startsWith('configuration reload refused'), 'about the refused reload')
  t.match(refused.msg, /routes\.yaml:\d+:\d+: routes\[0\]\.origin: /, 'the same precise message as at start')
  t.equal((await get(p.port, '/api/x')).body, '{"from":"b"}', 'the previous routes keep serving')
  t.equal((await get(p.port, '/x')).body, '{"from":"a"}')

  p.child.kill('SIGTERM')
  t.same(await p.exited, { code: 0, signal: null })
})

t.test('an invalid --workers value is refused before anything starts', async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', '--config', 'routes.yaml', '--workers', 'many'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  const code = await new Promise((resolve) => child.once('exit', resolve))
  t.equal(code, 2)
  t.match(stderr, /--workers: expected a whole number of worker processes \(1 or more\) or "auto", got "many"/)
})

t.test('--workers 2 serves from both workers, replaces a killed worker, sums metrics across workers and reloads every worker on SIGHUP', async (t) => {
  const a = await startOrigin(t, json({ from: 'a' }, { 'cache-control': 'max-age=60' }))
  const b = await startOrigin(t, json({ from: 'b' }))
  const p = await startProcess(t, configYaml(`  - { name: main, path: /, origin: "${a.url}" }\n`), ['--workers', '2'])
  const listening = p.logs.filter((l) => l.msg === 'worker listening')
  t.same(listening.map((l) => l.worker).sort(), [1, 2], 'two workers')
  t.same(listening.filter((l) => l.adminPort !== undefined).map((l) => l.worker), [1], 'only worker 1 binds the admin listener')

  const N = 10
  for (let i = 0; i < N; i++) t.equal((await get(p.port, '/products/1')).status, 200)
  const served = new Set(p.logs.filter((l) => l.msg === 'request').map((l) => l.worker))
  t.same([...served].sort(), [1, 2], 'both workers answered requests')
  let m = new Scrape((await get(p.adminPort, '/metrics')).body)
  t.equal(m.sum('cachegate_requests_total', { route: 'main' }), N, 'the admin worker reports the sum over both workers')
  t.equal(m.sum('cachegate_requests_total', { route: 'main', outcome: 'miss' }), 2, 'each worker has its own memory cache: one miss each')
  t.equal(m.sum('cachegate_store_entries'), 2)

  // Kill worker 2: the primary starts a new one and serving goes on.
  const second = listening.find((l) => l.worker === 2)
  process.kill(Number(second?.pid), 'SIGKILL')
  await p.waitForLog((l) => l.msg === 'worker died: starting a new one' && l.worker === 2, 'about worker 2 dying')
  const replacement = await p.waitForLog((l) => l.msg === 'worker listening' && l.worker === 2 && l.pid !== second?.pid, 'from the new worker 2')
  t.not(replacement.pid, second?.pid, 'a new process took slot 2')
  for (let i = 0; i < 4; i++) t.equal((await get(p.port, '/products/1')).status, 200, 'still serving')
  m = new Scrape((await get(p.adminPort, '/metrics')).body)
  t.ok(m.sum('cachegate_requests_total') >= 4, 'metrics still collected from both workers')

  // Kill worker 1: the admin listener comes back with its replacement.
  const first = listening.find((l) => l.worker === 1)
  process.kill(Number(first?.pid), 'SIGKILL')
  await p.waitForLog((l) => l.msg === 'worker listening' && l.worker === 1 && l.pid !== first?.pid, 'from the new worker 1')
  t.equal((await get(p.adminPort, '/healthz')).status, 200, 'the admin listener is back')

  // SIGHUP to the primary reloads both workers.
  await p.write(configYaml(`  - { name: other, path: /, origin: "${b.url}" }\n`))
  p.child.kill('SIGHUP')
  await p.waitForLog((l) => l.msg === 'configuration reloaded' && l.worker === 1, 'worker 1 reloaded')
  await p.waitForLog((l) => l.msg === 'configuration reloaded' && l.worker === 2, 'worker 2 reloaded')
  for (let i = 0; i < 4; i++) t.equal((await get(p.port, '/products/2')).body, '{"from":"b"}', 'every worker uses the new route')

  // POST /reload on the admin worker reaches the other worker through the primary.
  const reloadsBefore = p.logs.filter((l) => l.msg === 'configuration reloaded').length
  await p.write(configYaml(`  - { name: main, path: /, origin: "${a.url}" }\n`))
  const reload = await get(p.adminPort, '/reload', { authorization: `Bearer ${TOKEN}` }, 'POST')
  t.equal(reload.status, 200)
  await p.waitForLog((l) => l.msg === 'configuration reloaded' && p.logs.filter((x) => x.msg === 'configuration reloaded').length >= reloadsBefore + 2, 'both workers reloaded')
  for (let i = 0; i < 4; i++) t.equal((await get(p.port, '/products/3')).body, '{"from":"a"}', 'every worker uses the reloaded route')

  p.child.kill('SIGTERM')
  t.same(await p.exited, { code: 0, signal: null }, 'the primary exits 0 once both workers stopped')
  t.equal(p.logs.filter((l) => l.msg === 'stopped' && l.worker !== undefined).length, 2, 'both workers stopped cleanly')
})

t.test('a stored entry Node cannot write (CR LF in a field, status 1000) on the fast path is answered from the origin and the process keeps running', async (t) => {
  const redis = await startRedis(t)
  const raw = redis.client()
  const origin = await startOrigin(t, (_req, res, n) => {
    const body = `fresh ${n}`
    res.writeHead(200, { 'cache-control': 'max-age=600', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
  // The entry is stored in the background after the answer: Redis tells when (keyspace events).
  await raw.config('SET', 'notify-keyspace-events', 'K$')
  const events = redis.client()
  const sets: string[] = []
  let onSet: () => void = () => undefined
  events.on('pmessage', (_pattern: string, channel: string, event: string) => {
    if (event !== 'set') return
    sets.push(channel.slice('__keyspace@0__:'.length))
    onSet()
  })
  /** The key of the n-th entry write (1-based), once Redis has it. */
  const nthSet = async (n: number): Promise<string> => {
    while (sets.length < n) await new Promise<void>((resolve) => { onSet = resolve })
    return sets[n - 1] as string
  }
  await events.psubscribe('__keyspace@0__:proc:*:e:')
  const p = await startProcess(t, configYaml(`  - { name: main, path: /, origin: "${origin.url}" }\n`, `redis: { url: "${redis.url}", keyPrefix: "proc:" }\n`))
  t.equal((await get(p.port, '/page')).body, 'fresh 1')
  const entryKey = await nthSet(1)
  const good = await raw.getBuffer(entryKey)
  if (good === null) throw new Error('not stored')
  const crlf = CORRUPTIONS.find((c) => c.problem === 'header-value' && c.name.includes('CR LF'))
  const status = CORRUPTIONS.find((c) => c.problem === 'status')
  if (crlf === undefined || status === undefined) throw new Error('missing corruption cases')
  await raw.set(entryKey, status.corrupt(crlf.corrupt(good)), 'KEEPTTL')
  await nthSet(2) // our own corrupting write

  const res = await get(p.port, '/page')
  t.same(res, { status: 200, body: 'fresh 2' }, 'the origin\'s answer, never the stored one, never a 5xx')
  await p.waitForLog((l) => l.msg === 'invalid stored entry: served from the origin and deleted', 'about the invalid entry')
  t.equal(p.child.exitCode, null, 'the process is still running')
  await nthSet(3) // the gateway stores the origin's new answer in the background
  t.equal((await get(p.port, '/page')).body, 'fresh 2', 'the new answer is stored and served')
  t.equal((await get(p.adminPort, '/healthz')).status, 200)
  t.equal(p.stderr(), '', 'nothing on stderr (no unhandled rejection)')
})
