/**
 * Real redis-server processes for tests: one per caller, on a free port, killed on teardown.
 * Never the Redis on 6379, so a test may stop, pause or flush its own server freely.
 */
import { spawn, execFile } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import type { Test } from 'tap'

const execFileAsync = promisify(execFile)
const HOST = '127.0.0.1'
const READY_TIMEOUT_MS = 10_000

export interface RedisServer {
  port: number
  url: string
  /** SIGKILL, then wait for the process to exit. */
  stop(): Promise<void>
  /** Starts the server again on the same port (empty: nothing is persisted). */
  start(): Promise<void>
  /** SIGSTOP: the server keeps its connections but answers nothing. */
  pause(): void
  /** SIGCONT. */
  resume(): void
  /** A plain ioredis client for assertions, disconnected on teardown. */
  client(): Redis
}

export interface StartRedisOptions {
  maxmemory?: string
  policy?: string
}

/** A port nobody listens on right now (it may be taken again before we bind: callers retry). */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, HOST, () => {
      const address = server.address()
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port)
        else reject(new Error('no port'))
      })
    })
  })
}

/** Sends one inline command on a fresh connection and resolves with the raw reply text. */
async function rawCommand (port: number, command: string, timeoutMs = 1000): Promise<string> {
  return await new Promise((resolve, reject) => {
    const socket = net.connect(port, HOST)
    let reply = ''
    const timer = setTimeout(() => { socket.destroy(); reject(new Error('timeout')) }, timeoutMs)
    socket.once('error', (err) => { clearTimeout(timer); reject(err) })
    socket.on('connect', () => socket.write(`${command}\r\n`))
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('latin1')
      if (reply.endsWith('\r\n')) {
        clearTimeout(timer)
        socket.destroy()
        resolve(reply)
      }
    })
  })
}

const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

interface Spawned {
  child: ChildProcess
  exited: Promise<void>
}

/** Spawns redis-server and waits for PONG; rejects (server killed) if it exits or never answers. */
async function spawnRedis (port: number, extraArgs: string[]): Promise<Spawned> {
  const args = ['--port', String(port), '--save', '', '--appendonly', 'no', '--bind', HOST, ...extraArgs]
  const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString() })
  let exited = false
  const exitedPromise = new Promise<void>((resolve) => child.once('exit', () => { exited = true; resolve() }))
  const deadline = Date.now() + READY_TIMEOUT_MS
  while (Date.now() < deadline) {
    if (exited) throw new Error(`redis-server on port ${port} exited:\n${output}`)
    try {
      if ((await rawCommand(port, 'PING', 500)).startsWith('+PONG')) return { child, exited: exitedPromise }
    } catch {}
    await sleep(20)
  }
  child.kill('SIGKILL')
  await exitedPromise
  throw new Error(`redis-server on port ${port} did not answer PING:\n${output}`)
}

async function kill (spawned: Spawned | undefined): Promise<void> {
  if (spawned === undefined || spawned.child.exitCode !== null || spawned.child.signalCode !== null) return
  spawned.child.kill('SIGKILL')
  await spawned.exited
}

/** Spawns on a free port, trying another port when the chosen one was taken meanwhile. */
async function spawnOnFreePort (makeArgs: (port: number) => Promise<string[]> | string[]): Promise<Spawned & { port: number }> {
  let lastError: unknown
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort()
    try {
      return { port, ...(await spawnRedis(port, await makeArgs(port))) }
    } catch (err) {
      lastError = err
    }
  }
  throw lastError
}

export async function startRedis (t: Test, opts: StartRedisOptions = {}): Promise<RedisServer> {
  const extra: string[] = []
  if (opts.maxmemory !== undefined) extra.push('--maxmemory', opts.maxmemory)
  if (opts.policy !== undefined) extra.push('--maxmemory-policy', opts.policy)

  const first = await spawnOnFreePort(() => extra)
  const port = first.port
  let current: Spawned | undefined = first
  const clients: Redis[] = []

  t.teardown(async () => {
    for (const c of clients) c.disconnect()
    await kill(current)
  })

  return {
    port,
    url: `redis://${HOST}:${port}`,
    async stop () {
      const spawned = current
      current = undefined
      await kill(spawned)
    },
    async start () {
      if (current !== undefined) throw new Error('redis-server is already running')
      current = await spawnRedis(port, extra)
    },
    pause () {
      current?.child.kill('SIGSTOP')
    },
    resume () {
      current?.child.kill('SIGCONT')
    },
    client () {
      const c = new Redis({ host: HOST, port, maxRetriesPerRequest: 1, retryStrategy: () => 100 })
      c.on('error', () => {})
      clients.push(c)
      return c
    }
  }
}

export interface RedisCluster {
  /** "127.0.0.1:port" of every master. */
  nodes: string[]
  stop(): Promise<void>
}

/** N masters, no replicas, all slots assigned; resolves once every node reports cluster_state:ok. */
export async function startRedisCluster (t: Test, opts: { masters: number } = { masters: 3 }): Promise<RedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'cachegate-cluster-'))
  const servers: Spawned[] = []
  const stop = async (): Promise<void> => {
    await Promise.all(servers.map(kill))
  }
  t.teardown(async () => {
    await stop()
    await rm(dir, { recursive: true, force: true })
  })

  const ports: number[] = []
  for (let i = 0; i < opts.masters; i++) {
    // The cluster bus gets its own free port (cluster-port, Redis 7) rather than port + 10000.
    const spawned = await spawnOnFreePort(async (port) => [
      '--cluster-enabled', 'yes',
      '--cluster-config-file', join(dir, `nodes-${port}.conf`),
      '--cluster-node-timeout', '2000',
      '--cluster-port', String(await freePort()),
      '--dir', dir
    ])
    servers.push(spawned)
    ports.push(spawned.port)
  }
  const nodes = ports.map((port) => `${HOST}:${port}`)
  await execFileAsync('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes'])

  const deadline = Date.now() + READY_TIMEOUT_MS * 2
  for (const port of ports) {
    for (;;) {
      const { stdout } = await execFileAsync('redis-cli', ['-h', HOST, '-p', String(port), 'cluster', 'info'])
      if (stdout.includes('cluster_state:ok')) break
      if (Date.now() > deadline) throw new Error(`cluster node ${port} not ok:\n${stdout}`)
      await sleep(50)
    }
  }
  return { nodes, stop }
}

/** Calls per command so far (INFO commandstats). */
export async function commandStats (raw: Redis): Promise<Map<string, number>> {
  const info = await raw.info('commandstats')
  const out = new Map<string, number>()
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) out.set(m[1] ?? '', Number(m[2]))
  return out
}

/** Calls per command since `before` (from commandStats), the INFO calls themselves left out. */
export async function commandsSince (raw: Redis, before: Map<string, number>): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const [name, calls] of await commandStats(raw)) {
    const d = calls - (before.get(name) ?? 0)
    if (d > 0 && name !== 'info') out[name] = d
  }
  return out
}
