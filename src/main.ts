#!/usr/bin/env node
/**
 * The process: argv and environment -> config -> gateway -> listen; signals; --check.
 */
import { parseArgs } from 'node:util'
import { applyOverrides, ConfigError, loadConfig } from './config/load.ts'
import { createGateway } from './gateway.ts'
import { createLogger } from './observability/logger.ts'

const USAGE = `Usage: cachegate [--config FILE] [--port N] [--host ADDR] [--check]

  --config FILE   routes.yaml to load (env CACHEGATE_CONFIG; default ./routes.yaml)
  --port N        public port (env PORT; default from the file, else 8080)
  --host ADDR     public address (env HOST; default 0.0.0.0)
  --check         validate the config and exit 0 (valid) or 1 (invalid)
  -h, --help      this text

Environment: REDIS_URL (use Redis instead of memory), LOG_LEVEL (info), ADMIN_PORT,
CACHEGATE_ADMIN_TOKEN, and any \${VAR} the config file names (e.g. ORIGIN_URL).`

async function main (): Promise<number> {
  let args
  try {
    args = parseArgs({
      options: {
        config: { type: 'string' },
        port: { type: 'string' },
        host: { type: 'string' },
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
  let config
  try {
    config = applyOverrides(await loadConfig(file, env), {
      ...optional('port', args.port ?? env.PORT),
      ...optional('host', args.host ?? env.HOST),
      ...optional('redisUrl', env.REDIS_URL),
      ...optional('adminPort', env.ADMIN_PORT),
      ...optional('adminToken', env.CACHEGATE_ADMIN_TOKEN)
    })
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`cachegate: invalid configuration\n${err.message}\n`)
      return 1
    }
    throw err
  }
  if (args.check === true) {
    process.stdout.write(`${file}: OK (${config.routes.length} route${config.routes.length === 1 ? '' : 's'})\n`)
    return 0
  }

  const pretty = process.stdout.isTTY && env.NODE_ENV !== 'production'
  const logger = createLogger({ level: env.LOG_LEVEL ?? 'info', pretty })
  const gateway = await createGateway({ config, logger })
  const { port, adminPort } = await gateway.listen()
  logger.info({ port, adminPort, store: gateway.store.kind, routes: config.routes.map((r) => `${r.host ?? '*'}${r.path} -> ${r.origin}`) }, 'cachegate listening')

  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now')
      process.exit(1)
    }
    stopping = true
    logger.info({ signal }, 'shutting down')
    const deadline = setTimeout(() => {
      logger.error('shutdown deadline passed: exiting')
      process.exit(1)
    }, config.shutdownTimeout)
    deadline.unref()
    gateway.close().then(() => {
      logger.info('stopped')
      process.exit(0)
    }, (err: unknown) => {
      logger.error({ err }, 'error while stopping')
      process.exit(1)
    })
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
  return -1
}

function optional<K extends string> (key: K, value: string | undefined): Partial<Record<K, string>> {
  return value === undefined || value === '' ? {} : { [key]: value } as Record<K, string>
}

main().then((code) => {
  if (code >= 0) process.exitCode = code
}, (err: unknown) => {
  process.stderr.write(`cachegate: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exitCode = 1
})
