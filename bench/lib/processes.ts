/**
 * Child processes for the benchmarks: servers under test pinned to a core, a private
 * redis-server, CPU accounting from /proc, and a registry that kills whatever this process
 * started (by pid) when it ends, normally or not.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import net from 'node:net'
import { fileURLToPath } from 'node:url'

export const HOST = '127.0.0.1'
/** The project root (bench/lib/ is two levels down). */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url))

export const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------------------------
// Cores

let tasksetChecked: boolean | undefined
export function hasTaskset (): boolean {
  if (tasksetChecked === undefined) {
    try {
      execFileSync('taskset', ['-V'], { stdio: 'ignore' })
      tasksetChecked = true
    } catch {
      tasksetChecked = false
    }
  }
  return tasksetChecked
}

let startCpus: number[] | undefined
/**
 * The CPUs this process may run on ("0,1" or "0-3" expanded), as taskset reported them the first
 * time it was asked: before the benchmark pinned itself. `npm run bench` runs hit.ts (which pins
 * this process to the load generator's cores) before limit.ts, which lays the cores out again
 * and must see them all, or it would run every server unpinned beside wrk.
 */
export function allowedCpus (): number[] {
  if (startCpus !== undefined) return startCpus
  try {
    const text = execFileSync('taskset', ['-c', '-p', String(process.pid)], { encoding: 'utf8' })
    startCpus = expandCpuList(text.slice(text.lastIndexOf(':') + 1).trim())
    return startCpus
  } catch {
    return []
  }
}

function expandCpuList (list: string): number[] {
  const out: number[] = []
  for (const part of list.split(',')) {
    const [a, b] = part.split('-').map(Number)
    if (a === undefined || !Number.isInteger(a)) continue
    const end = b !== undefined && Number.isInteger(b) ? b : a
    for (let i = a; i <= end && out.length < 4096; i++) out.push(i)
  }
  return out
}

/**
 * The CPU layout the benchmarks use: the server under test on core 0, this process (the load
 * generator), redis-server and the origin on the others. `pinned` is false when there is no
 * taskset or a single core: every process then shares every core (ratios are still valid
 * within the run, absolute numbers less so).
 */
export interface Cores {
  pinned: boolean
  server: string
  others: string
}

export function pinSelf (): Cores {
  if (pinned !== undefined) return pinned
  const cpus = hasTaskset() ? allowedCpus() : []
  const [first, ...rest] = cpus
  if (first === undefined || rest.length === 0 || process.env.BENCH_NO_PIN === '1') {
    pinned = { pinned: false, server: '', others: '' }
    return pinned
  }
  const others = rest.join(',')
  // -a: every thread of this process (libuv's pool, V8's helpers), not just the main one.
  execFileSync('taskset', ['-a', '-c', '-p', others, String(process.pid)], { stdio: 'ignore' })
  pinned = { pinned: true, server: String(first), others }
  return pinned
}

let pinned: Cores | undefined

/** Moves this process (every thread) to these CPUs; false when taskset is missing or fails. */
export function pinProcessTo (cpus: string): boolean {
  if (!hasTaskset() || cpus === '') return false
  try {
    execFileSync('taskset', ['-a', '-c', '-p', cpus, String(process.pid)], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

// ---------------------------------------------------------------------------------------------
// Ports

/** A port nobody listens on right now (it may be taken again before it is bound). */
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

async function canConnect (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = net.connect(port, HOST)
    const timer = setTimeout(() => { socket.destroy(); resolve(false) }, 500)
    socket.once('connect', () => { clearTimeout(timer); socket.destroy(); resolve(true) })
    socket.once('error', () => { clearTimeout(timer); resolve(false) })
  })
}

// ---------------------------------------------------------------------------------------------
// Processes

export interface Proc {
  readonly name: string
  readonly pid: number
  readonly child: ChildProcess
  /** stdout and stderr so far (last 64 KiB), for error messages. */
  output(): string
  /** How many characters of output there have been so far; pass it to since(). */
  mark(): number
  /** Output after a mark (as much of it as the last 64 KiB still holds). */
  since(mark: number): string
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>
}

const running = new Set<Proc>()

/** Kills (SIGKILL, by pid) every process started here that is still running. */
export function killAll (): void {
  for (const p of running) {
    try {
      process.kill(p.pid, 'SIGKILL')
    } catch {}
  }
  running.clear()
}

process.once('exit', killAll)
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAll()
    process.exit(130)
  })
}

export interface SpawnOptions {
  name: string
  command: string
  args: string[]
  env?: NodeJS.ProcessEnv
  /** taskset CPU list ('' or undefined: inherit this process's affinity). */
  cpus?: string | undefined
  /** Resolves when the process listens on this port; rejects if it exits first or after `readyMs`. */
  port?: number
  readyMs?: number
}

export async function spawnProc (o: SpawnOptions): Promise<Proc> {
  const pinned = o.cpus !== undefined && o.cpus !== '' && hasTaskset()
  // taskset execs the command: the child's pid is the command's pid.
  const child = pinned
    ? spawn('taskset', ['-c', o.cpus ?? '', o.command, ...o.args], { cwd: ROOT, env: o.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(o.command, o.args, { cwd: ROOT, env: o.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] })
  if (child.pid === undefined) throw new Error(`${o.name}: could not start ${o.command}`)
  const pid = child.pid
  let output = ''
  let total = 0
  const keep = (chunk: Buffer): void => {
    const text = chunk.toString()
    total += text.length
    output = (output + text).slice(-65536)
  }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  let exited = false
  const exitedPromise = new Promise<void>((resolve) => child.once('exit', () => { exited = true; resolve() }))
  const proc: Proc = {
    name: o.name,
    pid,
    child,
    output: () => output,
    mark: () => total,
    since: (mark) => output.slice(Math.max(0, output.length - (total - mark))),
    async stop (graceMs = 3000) {
      running.delete(proc)
      if (exited) return
      child.kill('SIGTERM')
      const timer = setTimeout(() => { if (!exited) child.kill('SIGKILL') }, graceMs)
      await exitedPromise
      clearTimeout(timer)
    }
  }
  running.add(proc)
  if (o.port !== undefined) {
    const deadline = Date.now() + (o.readyMs ?? 20_000)
    for (;;) {
      if (exited) {
        running.delete(proc)
        throw new Error(`${o.name} exited before listening on ${o.port}:\n${output}`)
      }
      if (await canConnect(o.port)) break
      if (Date.now() > deadline) {
        await proc.stop(0)
        throw new Error(`${o.name} did not listen on ${o.port} within ${o.readyMs ?? 20_000} ms:\n${output}`)
      }
      await sleep(50)
    }
  }
  return proc
}

/** `node <script>` for a compiled script (dist/…), in the project root. */
export async function spawnCompiled (o: Omit<SpawnOptions, 'command' | 'args'> & { script: string, args?: string[], nodeArgs?: string[] }): Promise<Proc> {
  return await spawnProc({ ...o, command: process.execPath, args: [...(o.nodeArgs ?? []), o.script, ...(o.args ?? [])] })
}

/** `node --import tsx <script>` in the project root. */
export async function spawnNode (o: Omit<SpawnOptions, 'command' | 'args'> & { script: string, args?: string[], nodeArgs?: string[] }): Promise<Proc> {
  return await spawnProc({ ...o, command: process.execPath, args: [...(o.nodeArgs ?? []), '--import', 'tsx', o.script, ...(o.args ?? [])] })
}

// ---------------------------------------------------------------------------------------------
// Redis

export interface RedisProc {
  port: number
  url: string
  proc: Proc
}

/** A private redis-server on a free port (never 6379): no persistence, killed at the end. */
export async function startRedis (cpus: string | undefined): Promise<RedisProc> {
  let lastError: unknown
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort()
    try {
      const proc = await spawnProc({
        name: 'redis-server',
        command: 'redis-server',
        // A cache's Redis: bounded, evicting (cachegate warns about noeviction and no maxmemory).
        args: ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no', '--maxmemory', '256mb', '--maxmemory-policy', 'allkeys-lru'],
        cpus,
        port,
        readyMs: 10_000
      })
      return { port, url: `redis://${HOST}:${port}`, proc }
    } catch (err) {
      lastError = err
    }
  }
  throw lastError
}

// ---------------------------------------------------------------------------------------------
// CPU accounting

const TICKS_PER_SECOND = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  } catch {
    return 100
  }
})()

/** CPU seconds (user + system) a process has used so far; undefined when it is gone. */
function cpuSeconds (pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after ')'.
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND
  } catch {
    return undefined
  }
}

/**
 * CPU seconds a process's threads have run so far, from the scheduler's own nanosecond
 * accounting (/proc/PID/task/TID/schedstat) rather than 10 ms ticks: precise enough for a burst
 * that lasts a fraction of a second. Undefined when the process is gone (or not on Linux).
 */
export function runSeconds (pid: number): number | undefined {
  try {
    let ns = 0
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0])
      } catch {
        // The thread ended meanwhile.
      }
    }
    return ns / 1e9
  } catch {
    return undefined
  }
}

/** Starts measuring; the returned function gives the share of one core used since (1.0 = one core busy). */
export function cpuMeter (pid: number | 'self'): () => number | undefined {
  const startWall = performance.now()
  if (pid === 'self') {
    const start = process.cpuUsage()
    return () => {
      const used = process.cpuUsage(start)
      return (used.user + used.system) / 1000 / (performance.now() - startWall)
    }
  }
  const start = cpuSeconds(pid)
  return () => {
    const end = cpuSeconds(pid)
    if (start === undefined || end === undefined) return undefined
    return (end - start) * 1000 / (performance.now() - startWall)
  }
}
