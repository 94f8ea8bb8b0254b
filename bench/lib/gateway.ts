/**
 * cachegate as a separate process, the way it runs in production: `node dist/src/main.js
 * --config FILE --port N` (compiled once per run) with LOG_LEVEL=warn (the per-request line is at info),
 * from a temporary routes file.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { freePort, HOST, spawnCompiled, spawnNode, type Proc } from './processes.ts'

const ROOT_DIR = fileURLToPath(new URL('../../', import.meta.url))

export interface GatewayProcOptions {
  name: string
  origin: string
  /** redis:// URL for the Redis store; the memory store without it. */
  redisUrl?: string
  keyPrefix?: string
  /** redis.commandTimeout (e.g. "50ms"); cachegate's default without it. */
  redisCommandTimeout?: string
  /** Extra `cache:` settings (e.g. coalesceWait). */
  cache?: Record<string, string | number>
  /** Extra `limits:` settings (e.g. requestBodyTimeout). */
  limits?: Record<string, string | number>
  /** taskset CPU list. */
  cpus?: string
  /** Extra node flags (e.g. --cpu-prof). */
  nodeArgs?: string[]
  /** The route keeps hot entries in instance memory in front of Redis (`l1: true`). */
  l1?: boolean
  /** Extra environment (e.g. BENCH_PROBE_PORT for the heap probe). */
  env?: Record<string, string>
  /**
   * Another cachegate checkout to run instead of this one (its own dist/, built there with its
   * own tsc; it needs node_modules), e.g. `git archive` of the commit before a change, so both
   * run in one benchmark.
   */
  root?: string
}

export interface GatewayProc {
  url: string
  port: number
  proc: Proc
  stop(): Promise<void>
}

const dir = mkdtempSync(join(tmpdir(), 'cachegate-bench-'))
process.once('exit', () => rmSync(dir, { recursive: true, force: true }))

let files = 0

/** The routes.yaml text (JSON is YAML) for one gateway. */
export function gatewayConfig (o: GatewayProcOptions): Record<string, unknown> {
  return {
    listen: { host: HOST, port: 0 },
    // Port 0: several instances may run side by side; the benchmarks never use the admin API.
    admin: { host: HOST, port: 0 },
    ...(o.redisUrl !== undefined
      ? { redis: { url: o.redisUrl, keyPrefix: o.keyPrefix ?? 'bench:', ...(o.redisCommandTimeout !== undefined ? { commandTimeout: o.redisCommandTimeout } : {}) } }
      : {}),
    ...(o.cache !== undefined ? { cache: o.cache } : {}),
    ...(o.limits !== undefined ? { limits: o.limits } : {}),
    shutdownTimeout: '5s',
    routes: [{ name: 'bench', path: '/', origin: o.origin, ...(o.l1 === true ? { l1: true } : {}) }]
  }
}

/** BENCH_REDIS_COMMAND_TIMEOUT, when set, overrides cachegate's redis.commandTimeout in every benchmark. */
export function redisCommandTimeout (): { redisCommandTimeout?: string } {
  const v = process.env.BENCH_REDIS_COMMAND_TIMEOUT
  return v !== undefined && v.trim() !== '' ? { redisCommandTimeout: v.trim() } : {}
}

/** The gateway's warning lines summarized: "op: err" with counts, most frequent first. */
export function summarizeWarnings (lines: string[]): string {
  const counts = new Map<string, number>()
  for (const line of lines) {
    let key = line.slice(0, 120)
    try {
      const parsed = JSON.parse(line) as { op?: unknown, err?: unknown, msg?: unknown }
      key = [parsed.op, parsed.err ?? parsed.msg].filter((v) => typeof v === 'string').join(': ')
    } catch {}
    counts.set(key, (counts.get(key) ?? 0) + 1)
  }
  return [...counts].sort((a, b) => b[1] - a[1]).slice(0, 5).map(([k, n]) => `${n}× ${k}`).join('; ')
}

const built = new Set<string>()
/**
 * The gateway as production runs it (the Dockerfile's `node dist/src/main.js`): compiled once
 * per benchmark run (and per checkout) with the project's own `npm run build`, so no TypeScript
 * loader is measured.
 */
function builtMain (root: string): string {
  if (!built.has(root)) {
    execFileSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' })
    built.add(root)
  }
  return join(root, 'dist', 'src', 'main.js')
}

export async function startGateway (o: GatewayProcOptions): Promise<GatewayProc> {
  const file = join(dir, `gateway-${++files}.yaml`)
  writeFileSync(file, JSON.stringify(gatewayConfig(o), null, 2))
  let lastError: unknown
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort()
    try {
      // BENCH_GATEWAY=tsx runs src/main.ts through tsx instead (as `npm start` does).
      const spawn = process.env.BENCH_GATEWAY === 'tsx' ? spawnNode : spawnCompiled
      const proc = await spawn({
        name: o.name,
        script: process.env.BENCH_GATEWAY === 'tsx' ? join(o.root ?? ROOT_DIR, 'src', 'main.ts') : builtMain(o.root ?? ROOT_DIR),
        args: ['--config', file, '--port', String(port), '--host', HOST],
        ...(o.nodeArgs !== undefined ? { nodeArgs: o.nodeArgs } : {}),
        cpus: o.cpus,
        port,
        // Everything the gateway reads from the environment is set here, so a REDIS_URL or
        // PORT in the caller's shell cannot change what is measured.
        env: {
          ...process.env,
          LOG_LEVEL: 'warn',
          NODE_ENV: 'production',
          REDIS_URL: '',
          PORT: '',
          HOST: '',
          ADMIN_PORT: '',
          CACHEGATE_ADMIN_TOKEN: '',
          CACHEGATE_CONFIG: '',
          ...o.env
        }
      })
      return { url: `http://${HOST}:${port}`, port, proc, stop: async () => await proc.stop(6000) }
    } catch (err) {
      lastError = err
    }
  }
  throw lastError
}
