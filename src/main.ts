#!/usr/bin/env node
/**
 * The process: argv and environment -> config -> gateway -> listen; signals; --check;
 * --workers (the primary and worker roles are in cluster.ts).
 *
 * Signals: SIGTERM and SIGINT stop gracefully (no new connections, /readyz 503, in-flight
 * requests and background refreshes finish, pools and Redis closed, exit 0) within
 * shutdownTimeout, else exit 1; a second signal exits 1 at once. SIGHUP reloads the config
 * file: a valid one applies to new requests, an invalid one is logged and the old one kept.
 */
import { parseArgs } from 'node:util'
import { parseWorkers, runPrimary, workerHooks, type WorkerHooks } from './cluster.ts'
import { adminTokenProblem } from './config/admin-token.ts'
import { applyOverrides, ConfigError, loadConfig } from './config/load.ts'
import type { GatewayConfig } from './config/types.ts'
import { createGateway, type Gateway } from './gateway.ts'
import { createLogger, type Logger } from './observability/logger.ts'

const USAGE = `Usage: cachegate [--config FILE] [--port N] [--host ADDR] [--workers N|auto] [--check]

  --config FILE     routes.yaml to load (env CACHEGATE_CONFIG; default ./routes.yaml)
  --port N          public port (env PORT; default from the file, else 8080)
  --host ADDR       public address (env HOST; default 0.0.0.0)
  --workers N|auto  worker processes sharing the port (env WORKERS; default 1; auto: one per CPU)
  --check           validate the config and exit 0 (valid) or 1 (invalid)
  -h, --help        this text

Environment: REDIS_URL (use Redis instead of memory), LOG_LEVEL (info), ADMIN_PORT,
CACHEGATE_ADMIN_TOKEN, and any \${VAR} the config file names (e.g. ORIGIN_URL).

Signals: SIGTERM/SIGINT stop gracefully (a second one exits at once); SIGHUP reloads the config.`

async function main (): Promise<number> {
  let args
  try {
    args = parseArgs({
      options: {
        config: { type: 'string' },
        port: { type: 'string' },
        host: { type: 'string' },
        workers: { type: 'string' },
        check: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false }
      },
      strict: true,
      allowPositionals: false
    }).values
  } catch (err) {
    process.stderr.write(`cachegate: ${(err as Error).message}\n\n${USAGE}\n`)
    return 2
  }
  if (args.help === true) {
    process.stdout.write(USAGE + '\n')
    return 0
  }
  const env = process.env
  const file = args.config ?? env.CACHEGATE_CONFIG ?? 'routes.yaml'
  /** The file with the command line and environment applied; the same for start, SIGHUP and POST /reload. */
  const readConfig = async (): Promise<GatewayConfig> => {
    const config = applyOverrides(await loadConfig(file, env), {
      ...optional('port', args.port ?? env.PORT),
      ...optional('host', args.host ?? env.HOST),
      ...optional('redisUrl', env.REDIS_URL),
      ...optional('adminPort', env.ADMIN_PORT),
      ...optional('adminToken', env.CACHEGATE_ADMIN_TOKEN)
    })
    // The process refuses a guessable admin token (start, --check, SIGHUP and POST /reload alike).
    const token = config.admin.token
    const problem = token === undefined || token === '' ? undefined : adminTokenProblem(token)
    if (problem !== undefined) {
      const from = env.CACHEGATE_ADMIN_TOKEN !== undefined && env.CACHEGATE_ADMIN_TOKEN !== '' ? 'CACHEGATE_ADMIN_TOKEN' : `${file}: admin.token`
      throw new ConfigError([`${from}: ${problem}`])
    }
    return config
  }
  let config
  try {
    config = await readConfig()
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`cachegate: invalid configuration\n${err.message}\n`)
      return 1
    }
    throw err
  }
  const workers = parseWorkers(args.workers ?? env.WORKERS)
  if (typeof workers === 'string') {
    process.stderr.write(`cachegate: ${args.workers !== undefined ? '--workers' : 'WORKERS'}: ${workers}\n`)
    return 2
  }
  if (args.check === true) {
    process.stdout.write(`${file}: OK (${config.routes.length} route${config.routes.length === 1 ? '' : 's'})\n`)
    return 0
  }

  const pretty = process.stdout.isTTY && env.NODE_ENV !== 'production'
  const logger = createLogger({ level: env.LOG_LEVEL ?? 'info', pretty })
  const worker = workerHooks()
  if (worker === undefined && workers > 1) {
    if (config.redis === undefined) {
      logger.warn({ workers }, 'the memory store with several workers: each worker caches on its own, and purges and /explain reach worker 1 only; use Redis')
    }
    return await runPrimary({ workers, config, readConfig, logger }) ? -1 : 1
  }
  return await serve(config, readConfig, worker, worker === undefined ? logger : logger.child({ worker: worker.id }))
}

/** One gateway: the whole process, or one worker of several. */
async function serve (config: GatewayConfig, readConfig: () => Promise<GatewayConfig>, worker: WorkerHooks | undefined, logger: Logger): Promise<number> {
  const gateway = await createGateway({
    config,
    logger,
    configSource: readConfig,
    ...(worker !== undefined
      ? { adminListener: worker.admin, metricsText: worker.clusterMetrics, onAdminReload: worker.reloaded }
      : {})
  })
  worker?.report(gateway.metrics.registry)
  const { port, adminPort } = await gateway.listen()
  if (worker === undefined) {
    logger.info({ port, adminPort, store: gateway.store.kind, routes: config.routes.map((r) => `${r.host ?? '*'}${r.path} -> ${r.origin}`) }, 'cachegate listening')
  } else {
    worker.listening({ port, adminPort })
  }

  const stop = gracefulStop(gateway, config.shutdownTimeout, logger)
  process.on('SIGTERM', () => stop('SIGTERM', true))
  process.on('SIGINT', () => stop('SIGINT', true))
  const reload = (): void => {
    gateway.reloadFromSource().catch((err: unknown) => logger.error({ err }, 'reload failed'))
  }
  process.on('SIGHUP', reload)
  worker?.onShutdown(() => stop('primary', false))
  worker?.onReload(reload)
  return -1
}

/**
 * Stops the gateway (gateway.close(): listeners closed, in-flight requests and background
 * tasks finished, pools and Redis closed) and exits 0, or 1 past `timeout` ms. A second
 * signal exits 1 at once; a repeated request from the primary is ignored.
 */
function gracefulStop (gateway: Gateway, timeout: number, logger: Logger): (why: string, signal: boolean) => void {
  let stopping = false
  return (why, signal) => {
    if (stopping) {
      if (!signal) return
      logger.warn({ signal: why }, 'second signal: exiting now')
      process.exit(1)
    }
    stopping = true
    logger.info({ signal: why, timeoutMs: timeout }, 'shutting down: finishing in-flight requests')
    const deadline = setTimeout(() => {
      logger.error({ timeoutMs: timeout }, 'shutdown deadline passed: exiting with requests unfinished')
      process.exit(1)
    }, timeout)
    deadline.unref()
    gateway.close().then(() => {
      logger.info('stopped')
      process.exit(0)
    }, (err: unknown) => {
      logger.error({ err }, 'error while stopping')
      process.exit(1)
    })
  }
}

function optional<K extends string> (key: K, value: string | undefined): Partial<Record<K, string>> {
  return value === undefined || value === '' ? {} : { [key]: value } as Record<K, string>
}

main().then((code) => {
  if (code >= 0) process.exitCode = code
}, (err: unknown) => {
  process.stderr.write(`cachegate: ${err instanceof Error ? err.message : String(err)}\n`)
  // Exit now: a half-started gateway (a Redis client, a worker's IPC channel) would keep the process alive.
  process.exit(1)
})
