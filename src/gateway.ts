/**
 * Composition root: picks the store, the origin client and the clock, and builds the public
 * and admin fastify apps. Reads no process.* (tests build gateways directly; main.ts owns
 * the process).
 */
import Fastify, { type FastifyInstance } from 'fastify'
import type { Socket } from 'node:net'
import { STATUS_CODES } from 'node:http'
import type { CacheKey } from './cache/key.ts'
import { systemClock, type Clock } from './clock.ts'
import { compileRoutes, type RouteMatcher } from './config/routes.ts'
import type { GatewayConfig } from './config/types.ts'
import { errorBody } from './errors.ts'
import { ReadThrough } from './lifecycle/read-through.ts'
import { Tasks } from './lifecycle/tasks.ts'
import { OriginClient } from './origin/client.ts'
import { proxyPlugin } from './http/proxy.ts'
import { createAdminApp } from './http/admin.ts'
import type { OutcomeListener, RequestOutcome } from './observability/events.ts'
import { createLogger, type Logger } from './observability/logger.ts'
import { MemoryStore } from './store/memory.ts'
import { createRedisClient, RedisStore } from './store/redis.ts'
import { RedisBus, RedisLocks } from './store/redis-coordination.ts'
import { LocalLocks, type Locks } from './lifecycle/lock.ts'
import { LocalBus, type Bus } from './invalidation/bus.ts'
import type { Cluster, Redis } from 'ioredis'
import type { Store } from './store/store.ts'

export interface GatewayOptions {
  config: GatewayConfig
  clock?: Clock
  logger?: Logger
  /** Use this store instead of the one the config names (tests, benchmarks); locks and bus are then local. */
  store?: Store
  onOutcome?: OutcomeListener
  /** Random source for TTL jitter and refresh-ahead (tests). */
  random?: () => number
}

export interface Gateway {
  readonly app: FastifyInstance
  readonly admin: FastifyInstance
  readonly store: Store
  readonly tasks: Tasks
  readonly logger: Logger
  config(): GatewayConfig
  /**
   * Swaps in a new validated config for new requests (routes, origins, route options).
   * Listener addresses, the store and cache-wide settings take effect at the next start.
   */
  reload(next: GatewayConfig): void
  /** Starts both listeners; returns the bound ports. */
  listen(): Promise<{ port: number, adminPort: number }>
  /** Stops accepting, lets in-flight requests and background tasks finish, closes pools and the store. */
  close(): Promise<void>
}

/** The shared state behind the cache: a store, and the locks and bus that coordinate instances. */
export interface Backend {
  store: Store
  locks: Locks
  bus: Bus
  /** Prefix for pub/sub channel names. */
  prefix: string
  /** The Redis client when there is one (readiness, settings checks). */
  redis: Redis | Cluster | undefined
  close(): Promise<void>
}

function makeBackend (config: GatewayConfig, clock: Clock, logger: Logger): Backend {
  if (config.redis === undefined) {
    const bus = new LocalBus()
    return {
      store: new MemoryStore({ maxBytes: config.cache.memoryMaxBytes, clock }),
      locks: new LocalLocks(clock),
      bus,
      prefix: 'cg:',
      redis: undefined,
      close: async () => await bus.close()
    }
  }
  const client = createRedisClient({
    ...(config.redis.url !== undefined ? { url: config.redis.url } : {}),
    ...(config.redis.cluster.length > 0 ? { cluster: [...config.redis.cluster] } : {}),
    commandTimeout: config.redis.commandTimeout
  })
  let lastError = ''
  client.on('error', (err: Error) => {
    // ioredis repeats the same error on every reconnect attempt: log changes only.
    if (err.message !== lastError) logger.warn({ err: err.message }, 'redis connection error')
    lastError = err.message
  })
  client.on('ready', () => { lastError = '' })
  const prefix = config.redis.keyPrefix
  const bus = new RedisBus(client, (err) => logger.warn({ err: (err as Error).message }, 'redis subscriber error'))
  return {
    store: new RedisStore({ client, keyPrefix: prefix, clock }),
    locks: new RedisLocks(client, prefix),
    bus,
    prefix,
    redis: client,
    close: async () => {
      await bus.close()
      await client.quit().catch(() => client.disconnect())
    }
  }
}

/** Waits (bounded) for the Redis connection so the first requests do not all miss; the gateway serves either way. */
async function redisReady (client: Redis | Cluster, ms: number): Promise<boolean> {
  if (client.status === 'ready') return true
  return await new Promise((resolve) => {
    const timer = setTimeout(() => {
      client.off('ready', onReady)
      resolve(false)
    }, ms)
    const onReady = (): void => {
      clearTimeout(timer)
      resolve(true)
    }
    client.once('ready', onReady)
  })
}

/** Malformed HTTP and oversized headers get the catalogue's JSON error, not a bare close. */
function clientErrorHandler (err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed || !socket.writable) return
  const code = err.code === 'HPE_HEADER_OVERFLOW' ? 'CG_ERR_HEADERS_TOO_LARGE' : err.code === 'HPE_INVALID_METHOD' ? 'CG_ERR_METHOD_NOT_ALLOWED' : 'CG_ERR_BAD_REQUEST'
  const body = JSON.stringify(errorBody(code))
  const status = code === 'CG_ERR_HEADERS_TOO_LARGE' ? 431 : code === 'CG_ERR_METHOD_NOT_ALLOWED' ? 405 : 400
  socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`)
}

export async function createGateway (options: GatewayOptions): Promise<Gateway> {
  let config = options.config
  let routes: RouteMatcher = compileRoutes(config.routes)
  const clock = options.clock ?? systemClock
  const logger = options.logger ?? createLogger({ level: 'info', pretty: false })
  const backend: Backend = options.store !== undefined
    ? { store: options.store, locks: new LocalLocks(clock), bus: new LocalBus(), prefix: 'cg:', redis: undefined, close: async () => undefined }
    : makeBackend(config, clock, logger)
  const store = backend.store
  const tasks = new Tasks((name, err) => logger.warn({ err, task: name }, 'background task failed'))
  const origin = new OriginClient(config.routes)
  const listeners: OutcomeListener[] = options.onOutcome !== undefined ? [options.onOutcome] : []

  const readThrough = new ReadThrough({
    store,
    origin,
    clock,
    tasks,
    cache: config.cache,
    onStoreError: (op, err) => logger.warn({ err: (err as Error).message, op }, 'store operation failed; serving from the origin'),
    locks: backend.locks,
    bus: backend.bus,
    fillChannel: `${backend.prefix}fill`,
    ...(options.random !== undefined ? { random: options.random } : {})
  })

  const app = Fastify({
    logger: false,
    trustProxy: false,
    return503OnClosing: true,
    bodyLimit: config.limits.maxBodyBytes,
    http: { maxHeaderSize: config.limits.maxHeaderBytes },
    clientErrorHandler,
    routerOptions: { ignoreDuplicateSlashes: false, maxParamLength: config.limits.maxUrlLength }
  })

  const invalidate = async (keys: CacheKey[]): Promise<void> => {
    await Promise.all(keys.map(async (k) => await store.deleteUrl(k)))
  }

  const onOutcome = (o: RequestOutcome): void => {
    logger.info({
      route: o.route,
      method: o.method,
      url: o.url,
      outcome: o.outcome,
      status: o.status,
      originStatus: o.originStatus,
      cacheStatus: o.cacheStatus,
      ms: Math.round(o.durationMs * 100) / 100
    }, 'request')
    for (const l of listeners) l(o)
  }

  await app.register(proxyPlugin, {
    config: () => config,
    routes: () => routes,
    readThrough,
    origin,
    invalidate,
    onOutcome,
    onError: (err, context) => logger.error({ err, context }, 'unexpected error')
  })

  const admin = createAdminApp({ config: () => config, now: () => clock.now() })
  admin.get('/readyz', async () => ({ status: 'ready', store: store.kind }))

  let closed = false
  return {
    app,
    admin,
    store,
    tasks,
    logger,
    config: () => config,
    reload (next) {
      config = next
      routes = compileRoutes(next.routes)
      origin.addRoutes(next.routes)
      logger.info({ routes: next.routes.map((r) => r.name) }, 'configuration reloaded')
    },
    async listen () {
      const subscribed = readThrough.start().catch((err: unknown) => logger.warn({ err: (err as Error).message }, 'could not subscribe to fill messages'))
      if (backend.redis !== undefined && !(await redisReady(backend.redis, 2000))) {
        logger.warn('redis is not reachable yet: serving from the origin until it is')
      } else {
        await subscribed
      }
      await app.listen({ port: config.listen.port, host: config.listen.host })
      await admin.listen({ port: config.admin.port, host: config.admin.host })
      const port = (app.server.address() as { port: number }).port
      const adminPort = (admin.server.address() as { port: number }).port
      return { port, adminPort }
    },
    async close () {
      if (closed) return
      closed = true
      await app.close()
      await admin.close()
      await tasks.settled()
      await origin.close()
      await store.close()
      await backend.close()
    }
  }
}
