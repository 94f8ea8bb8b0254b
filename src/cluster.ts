/**
 * Worker processes (node:cluster): `--workers N` runs N gateways sharing the public port.
 *
 * The primary runs no gateway. It forks the workers, restarts one that dies (with a backoff
 * when they keep dying), forwards SIGHUP as a reload and SIGTERM/SIGINT as a graceful stop,
 * and aggregates the workers' metrics (prom-client's AggregatorRegistry).
 *
 * The admin listener is bound once, by worker 1 (a replacement worker 1 binds it again):
 * /healthz, /readyz, /reload, /explain and the purge API are that worker's own, and its
 * /metrics asks the primary for the sum over every worker. A POST /reload on worker 1 is
 * passed on to the other workers through the primary. Every worker shares the Redis store, so
 * purges reach every worker's cache; with the memory store each worker has a cache of its
 * own, and purges and /explain see worker 1's only (use Redis with workers).
 *
 * Messages between them are objects with a `cachegate` field (below).
 */
import cluster, { type Worker } from 'node:cluster'
import { availableParallelism } from 'node:os'
import { AggregatorRegistry, type Registry } from 'prom-client'
import { systemClock } from './clock.ts'
import { ConfigError } from './config/load.ts'
import type { GatewayConfig } from './config/types.ts'
import type { Logger } from './observability/logger.ts'

/** Environment variable naming a worker's slot (1..N); worker 1 binds the admin listener. */
export const WORKER_ID_ENV = 'CACHEGATE_WORKER_ID'

type ToWorker =
  | { cachegate: 'shutdown' }
  | { cachegate: 'reload' }
  /** Send your registry's metrics (getMetricsAsJSON) for aggregation. */
  | { cachegate: 'collect', id: number }
  /** The aggregate the admin worker asked for. */
  | { cachegate: 'metrics', id: number, text?: string, error?: string }

type ToPrimary =
  | { cachegate: 'listening', port: number, adminPort: number }
  /** The admin worker asks for the aggregate of every worker. */
  | { cachegate: 'metrics', id: number }
  | { cachegate: 'collected', id: number, metrics: object[] }
  | { cachegate: 'reloaded' }

function isMessage<T extends { cachegate: string }> (m: unknown): m is T {
  return typeof m === 'object' && m !== null && typeof (m as { cachegate?: unknown }).cachegate === 'string'
}

/** `--workers` / WORKERS: a whole number from 1, or "auto" (one per CPU). */
export function parseWorkers (value: string | undefined, cpus: () => number = availableParallelism): number | string {
  if (value === undefined || value === '') return 1
  if (value === 'auto') return Math.max(1, cpus())
  if (/^\d{1,4}$/.test(value) && Number(value) >= 1) return Number(value)
  return `expected a whole number of worker processes (1 or more) or "auto", got ${JSON.stringify(value)}`
}

// ---------------------------------------------------------------------------------------------
// Worker side

export interface WorkerHooks {
  /** Slot of this worker (1..N). */
  id: number
  /** Whether this worker binds the admin listener. */
  admin: boolean
  /** The primary's sum of every worker's metrics (admin worker's /metrics). */
  clusterMetrics: () => Promise<string>
  /** Tells the other workers to reload (after POST /reload here). */
  reloaded: () => void
  /** Tells the primary this worker is serving. */
  listening: (ports: { port: number, adminPort: number }) => void
  /** The registry this worker reports to the primary; until set, it reports nothing. */
  report: (registry: Registry) => void
  /** Handlers for what the primary asks. */
  onShutdown: (fn: () => void) => void
  onReload: (fn: () => void) => void
}

/** Undefined in the primary or a single process; the worker's side of the protocol otherwise. */
export function workerHooks (): WorkerHooks | undefined {
  if (!cluster.isWorker) return undefined
  const id = Number(process.env[WORKER_ID_ENV] ?? '1')
  // Answers the primary's collection from the start (with nothing until the gateway exists),
  // so a scrape during a worker restart does not wait for a timeout.
  let registry: Registry | undefined
  let nextId = 0
  const pending = new Map<number, { resolve: (text: string) => void, reject: (err: Error) => void }>()
  const onShutdown: Array<() => void> = []
  const onReload: Array<() => void> = []
  const send = (m: ToPrimary): void => { process.send?.(m) }
  process.on('message', (m: unknown) => {
    if (!isMessage<ToWorker>(m)) return
    if (m.cachegate === 'shutdown') for (const fn of onShutdown) fn()
    if (m.cachegate === 'reload') for (const fn of onReload) fn()
    if (m.cachegate === 'collect') {
      const request = m.id
      Promise.resolve(registry?.getMetricsAsJSON() ?? []).then(
        (metrics) => send({ cachegate: 'collected', id: request, metrics }),
        () => send({ cachegate: 'collected', id: request, metrics: [] })
      )
    }
    if (m.cachegate === 'metrics') {
      const p = pending.get(m.id)
      pending.delete(m.id)
      if (m.text !== undefined) p?.resolve(m.text)
      else p?.reject(new Error(`could not collect the workers' metrics: ${m.error ?? 'no answer'}`))
    }
  })
  // The primary is gone: stop as if asked to.
  process.on('disconnect', () => { for (const fn of onShutdown) fn() })
  return {
    id,
    admin: id === 1,
    clusterMetrics: async () => await new Promise((resolve, reject) => {
      const requestId = nextId++
      pending.set(requestId, { resolve, reject })
      send({ cachegate: 'metrics', id: requestId })
    }),
    reloaded: () => send({ cachegate: 'reloaded' }),
    listening: ({ port, adminPort }) => send({ cachegate: 'listening', port, adminPort }),
    report: (r) => { registry = r },
    onShutdown: (fn) => { onShutdown.push(fn) },
    onReload: (fn) => { onReload.push(fn) }
  }
}

// ---------------------------------------------------------------------------------------------
// Primary side

export interface PrimaryOptions {
  workers: number
  config: GatewayConfig
  /** Loads and validates the configuration file again (SIGHUP). */
  readConfig: () => Promise<GatewayConfig>
  logger: Logger
}

/** Longest the primary waits for a worker's metrics; a scrape fails rather than report a partial sum. */
const COLLECT_TIMEOUT_MS = 3000

/** Restarts within this window count towards the backoff. */
const CRASH_WINDOW_MS = 60_000
const MAX_RESTART_DELAY_MS = 10_000

/**
 * Runs the primary: resolves once every worker is listening (true) or when one failed to
 * start (false, the others stopped). From then on the process lives until a signal.
 */
export async function runPrimary (o: PrimaryOptions): Promise<boolean> {
  const { logger } = o
  const slots = new Map<Worker, number>()
  const collecting = new Map<number, { waiting: Set<Worker>, got: object[][], done: (err?: Error) => void }>()
  let nextCollect = 0

  /** Every worker's registry, summed (per metric `aggregator`: sum, or min for cachegate_redis_up). */
  const aggregate = async (): Promise<string> => {
    const id = nextCollect++
    const workers = [...slots.keys()].filter((w) => w.isConnected())
    const got: object[][] = []
    await new Promise<void>((resolve, reject) => {
      const waiting = new Set(workers)
      const done = (err?: Error): void => {
        clearTimeout(timer)
        collecting.delete(id)
        if (err !== undefined) reject(err)
        else resolve()
      }
      const timer = setTimeout(() => done(new Error(`${waiting.size} worker(s) did not answer within ${COLLECT_TIMEOUT_MS} ms`)), COLLECT_TIMEOUT_MS)
      collecting.set(id, { waiting, got, done })
      for (const w of workers) w.send({ cachegate: 'collect', id } satisfies ToWorker)
      if (workers.length === 0) done()
    })
    return await AggregatorRegistry.aggregate(got).metrics()
  }

  const crashes = new Map<number, number[]>()
  let started = false
  let stopping = false

  const fork = (id: number): Worker => {
    const worker = cluster.fork({ [WORKER_ID_ENV]: String(id) })
    slots.set(worker, id)
    return worker
  }
  const broadcast = (m: ToWorker, except?: Worker): void => {
    for (const w of slots.keys()) if (w !== except && w.isConnected()) w.send(m)
  }

  const startup = new Promise<boolean>((resolve) => {
    const listening = new Set<number>()
    cluster.on('message', (worker, m: unknown) => {
      if (!isMessage<ToPrimary>(m)) return
      if (m.cachegate === 'listening') {
        const id = slots.get(worker) ?? 0
        logger.info({ worker: id, pid: worker.process.pid, port: m.port, ...(m.adminPort > 0 ? { adminPort: m.adminPort } : {}) }, 'worker listening')
        listening.add(id)
        if (!started && listening.size === o.workers) {
          started = true
          resolve(true)
        }
      } else if (m.cachegate === 'collected') {
        const c = collecting.get(m.id)
        if (c === undefined || !c.waiting.delete(worker)) return
        c.got.push(m.metrics)
        if (c.waiting.size === 0) c.done()
      } else if (m.cachegate === 'metrics') {
        aggregate().then(
          (text) => { if (worker.isConnected()) worker.send({ cachegate: 'metrics', id: m.id, text } satisfies ToWorker) },
          (err: unknown) => { if (worker.isConnected()) worker.send({ cachegate: 'metrics', id: m.id, error: err instanceof Error ? err.message : String(err) } satisfies ToWorker) }
        )
      } else if (m.cachegate === 'reloaded') {
        broadcast({ cachegate: 'reload' }, worker)
      }
    })
    cluster.on('exit', (worker, code, signal) => {
      const id = slots.get(worker) ?? 0
      slots.delete(worker)
      // A collection does not wait for a worker that is gone.
      for (const c of collecting.values()) if (c.waiting.delete(worker) && c.waiting.size === 0) c.done()
      if (stopping) return
      if (!started) {
        logger.error({ worker: id, code, signal }, 'a worker exited while starting: stopping')
        stopping = true
        for (const w of slots.keys()) w.process.kill('SIGKILL')
        resolve(false)
        return
      }
      const now = systemClock.now()
      const recent = (crashes.get(id) ?? []).filter((t) => now - t < CRASH_WINDOW_MS)
      recent.push(now)
      crashes.set(id, recent)
      const delay = Math.min(MAX_RESTART_DELAY_MS, 100 * 2 ** (recent.length - 1))
      logger.error({ worker: id, pid: worker.process.pid, code, signal, restartInMs: delay }, 'worker died: starting a new one')
      setTimeout(() => { if (!stopping) fork(id) }, delay)
    })
  })
  for (let id = 1; id <= o.workers; id++) fork(id)
  const ok = await startup
  if (!ok) return false
  logger.info({ workers: o.workers, port: o.config.listen.port, adminPort: o.config.admin.port, store: o.config.redis === undefined ? 'memory' : 'redis' }, 'cachegate listening')

  const stop = (signal: string): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now')
      for (const w of slots.keys()) w.process.kill('SIGKILL')
      process.exit(1)
    }
    stopping = true
    logger.info({ signal, workers: slots.size }, 'shutting down: workers finish their requests')
    // Workers enforce shutdownTimeout themselves; this is the backstop.
    const deadline = setTimeout(() => {
      logger.error('workers did not stop in time: killing them')
      for (const w of slots.keys()) w.process.kill('SIGKILL')
      process.exit(1)
    }, o.config.shutdownTimeout + 2000)
    deadline.unref()
    let failed = false
    const done = (): void => {
      if (slots.size > 0) return
      logger.info(failed ? 'stopped (a worker did not stop cleanly)' : 'stopped')
      process.exit(failed ? 1 : 0)
    }
    cluster.on('exit', (_worker, code) => {
      if (code !== 0) failed = true
      done()
    })
    broadcast({ cachegate: 'shutdown' })
    done()
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGHUP', () => {
    // Validated here once, so an invalid file is reported once rather than by every worker.
    o.readConfig().then(() => {
      logger.info({ workers: slots.size }, 'SIGHUP: reloading the configuration in every worker')
      broadcast({ cachegate: 'reload' })
    }, (err: unknown) => {
      const problems = err instanceof ConfigError ? err.problems : [err instanceof Error ? err.message : String(err)]
      logger.error({ problems }, `configuration reload refused, the running configuration is kept:\n${problems.join('\n')}`)
    })
  })
  return true
}
