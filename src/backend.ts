/**
 * The shared state behind the cache, as the configuration names it: a store, and the locks and
 * bus that coordinate instances. Without `redis`, an in-process memory store with local locks
 * and bus; with it, two Redis connections (reads and writes), the Redis store, locks and bus,
 * each behind the breakers of one StoreGuard (store/guard.ts). The gateway composes the rest.
 */
import type { Cluster, Redis } from 'ioredis'
import { systemClock, type Clock } from './clock.ts'
import type { GatewayConfig } from './config/types.ts'
import { LocalBus, type Bus } from './coordination/bus.ts'
import { LocalLocks, type Locks } from './coordination/locks.ts'
import { RedisBus, RedisLocks } from './coordination/redis.ts'
import type { Logger } from './observability/logger.ts'
import { StoreGuard } from './store/guard.ts'
import { MemoryStore } from './store/memory.ts'
import { createRedisClient, RedisStore } from './store/redis.ts'
import type { Store } from './store/store.ts'

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

export function makeBackend (config: Pick<GatewayConfig, 'redis' | 'cache'>, clock: Clock, logger: Logger): Backend {
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
  const target = {
    ...(config.redis.url !== undefined ? { url: config.redis.url } : {}),
    ...(config.redis.cluster.length > 0 ? { cluster: [...config.redis.cluster] } : {})
  }
  // Reads are timed by the guard (redis.commandTimeout, tolerant of a busy event loop: see
  // store/deadlines.ts), so this client arms no timer per command.
  const client = createRedisClient({ ...target, commandTimeout: undefined })
  // Writes get a connection of their own and a longer timeout: a large body on its way to
  // Redis neither holds up the lookups behind it nor gets cut short by the read timeout.
  const writer = createRedisClient({ ...target, commandTimeout: config.redis.writeTimeout })
  for (const [c, connection] of [[client, 'reads'], [writer, 'writes']] as const) {
    let lastError = ''
    c.on('error', (err: Error) => {
      // ioredis repeats the same error on every reconnect attempt: log changes only.
      if (err.message !== lastError) logger.warn({ err: err.message, connection }, 'redis connection error')
      lastError = err.message
    })
    c.on('ready', () => { lastError = '' })
  }
  const guard = new StoreGuard({
    ...config.redis.breaker,
    // One command timeout: the timeouts of one event-loop stall all fire at once (see store/circuit-breaker.ts).
    span: config.redis.commandTimeout,
    readTimeout: config.redis.commandTimeout,
    // Real time even under a test's manual clock: the breaker measures real I/O.
    clock: systemClock,
    onChange: (breaker, state, previous, cause) => {
      if (state === 'open' && previous === 'closed') logger.warn({ breaker, err: (cause as Error | undefined)?.message }, 'redis circuit breaker open: the store is bypassed, requests go to the origin')
      else if (state === 'closed') logger.info({ breaker }, 'redis circuit breaker closed: the store is used again')
      else logger.debug({ breaker, state }, 'redis circuit breaker probe')
    }
  })
  const prefix = config.redis.keyPrefix
  const bus = new RedisBus(client, (err) => logger.warn({ err: (err as Error).message }, 'redis subscriber error'))
  return {
    store: guard.store(new RedisStore({ client, writeClient: writer, keyPrefix: prefix, clock })),
    locks: guard.locks(new RedisLocks(client, prefix)),
    bus: guard.bus(bus),
    prefix,
    redis: client,
    close: async () => {
      await bus.close()
      await Promise.all([client, writer].map(async (c) => await c.quit().catch(() => c.disconnect())))
    }
  }
}

/** Waits (bounded) for the Redis connection so the first requests do not all miss; the gateway serves either way. */
export async function redisReady (client: Redis | Cluster, ms: number): Promise<boolean> {
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

/** A store given by the caller (tests, benchmarks), with local locks and bus: nothing shared with other instances. */
export function localBackend (store: Store, clock: Clock): Backend {
  return { store, locks: new LocalLocks(clock), bus: new LocalBus(), prefix: 'cg:', redis: undefined, close: async () => undefined }
}
