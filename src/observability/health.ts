/**
 * Readiness (GET /readyz) and the Redis memory settings check.
 *
 * Ready: the config is loaded (a gateway exists only with a valid one), the public listener
 * is up and, with Redis, Redis answers. When Redis does not answer the gateway still serves
 * every request from the origin (the cache fails open), so it reports `degraded` with HTTP
 * 200 rather than taking itself out of the load balancer: an instance without Redis is slower,
 * not broken, and taking every instance out at once during a Redis outage would turn a
 * slowdown into an outage. Not ready (503): the listener is not up yet, or shutdown began.
 *
 * Redis settings: a cache needs Redis to evict when full. With `maxmemory-policy noeviction`
 * (Redis' default) a full Redis refuses writes, and with no `maxmemory` it grows until the
 * host runs out of memory. They are read with CONFIG GET at start and after every reconnect
 * (a failover may land on a differently configured server), logged and shown on /readyz.
 */
import { Cluster, type Redis } from 'ioredis'
import type { Logger } from './logger.ts'

export interface RedisSettings {
  /** Bytes; 0 is no limit. */
  maxmemory: number
  policy: string
}

/** Problems with Redis' memory settings for a cache, each saying what to set; [] when fine. */
export function redisSettingsWarnings (s: RedisSettings): string[] {
  const warnings: string[] = []
  if (s.maxmemory === 0) {
    warnings.push('Redis has no memory limit (maxmemory 0): the cache grows until the host runs out of memory; ' +
      'set maxmemory (for example 256mb) with maxmemory-policy allkeys-lru or allkeys-lfu')
  }
  if (s.policy === 'noeviction') {
    warnings.push('Redis maxmemory-policy is noeviction: once full, Redis refuses writes and nothing new is cached ' +
      '(every miss goes to the origin); set maxmemory-policy allkeys-lru or allkeys-lfu')
  }
  return warnings
}

const UNCHECKABLE = 'set maxmemory and maxmemory-policy allkeys-lru or allkeys-lfu yourself: with noeviction a full Redis refuses writes'

async function configValue (node: Redis, name: string): Promise<string> {
  const reply: unknown = await node.config('GET', name)
  if (!Array.isArray(reply) || typeof reply[1] !== 'string') throw new Error(`unexpected CONFIG GET ${name} reply`)
  return reply[1]
}

/** Reads the settings of one server; throws when CONFIG GET is refused (managed Redis, ACLs). */
export async function readRedisSettings (node: Redis): Promise<RedisSettings> {
  const [maxmemory, policy] = await Promise.all([configValue(node, 'maxmemory'), configValue(node, 'maxmemory-policy')])
  return { maxmemory: Number(maxmemory), policy }
}

export type ReadinessStatus = 'ready' | 'degraded' | 'not-ready'

export interface Readiness {
  status: ReadinessStatus
  store: string
  checks: {
    config: 'ok'
    listener: 'up' | 'down' | 'stopping'
    redis?: 'ok' | 'unreachable'
    /** 'unchecked' until the first check after a connection finished. */
    redisSettings?: 'ok' | 'warning' | 'unchecked'
  }
  /** Why the status is not plainly ready. */
  detail?: string
  /** Problems that do not change the status (Redis settings). */
  warnings: string[]
}

export interface HealthOptions {
  store: string
  redis: Redis | Cluster | undefined
  logger: Logger
  /** Whether the public listener is accepting connections. */
  listening: () => boolean
  /** Longest a readiness PING may take (ms). */
  pingTimeout: number
}

export class Health {
  readonly #o: HealthOptions
  #stopping = false
  #settings: { state: 'ok' | 'warning' | 'unchecked', warnings: string[] } = { state: 'unchecked', warnings: [] }
  #checking: Promise<void> = Promise.resolve()

  constructor (options: HealthOptions) {
    this.#o = options
    const redis = options.redis
    if (redis === undefined) return
    // Attached before the first 'ready' can fire: the caller builds this right after the client.
    redis.on('ready', () => { this.#checking = this.#checkSettings(redis) })
    if (redis.status === 'ready') this.#checking = this.#checkSettings(redis)
  }

  /** From now on readiness is 'not-ready': the load balancer should stop sending requests. */
  stopping (): void {
    this.#stopping = true
  }

  /** Resolves when the settings check in progress, if any, has finished. */
  async settled (): Promise<void> {
    await this.#checking
  }

  get redisUp (): boolean {
    return this.#o.redis?.status === 'ready'
  }

  async readiness (): Promise<Readiness> {
    const { redis, store } = this.#o
    const listener = this.#stopping ? 'stopping' : this.#o.listening() ? 'up' : 'down'
    const checks: Readiness['checks'] = { config: 'ok', listener }
    const warnings = [...this.#settings.warnings]
    let status: ReadinessStatus = 'ready'
    let detail: string | undefined
    if (redis !== undefined) {
      const problem = await this.#ping(redis)
      checks.redis = problem === undefined ? 'ok' : 'unreachable'
      checks.redisSettings = this.#settings.state
      if (problem !== undefined) {
        status = 'degraded'
        detail = `Redis is unreachable (${problem}): every request goes to the origin until it is back`
      }
    }
    if (listener !== 'up') {
      status = 'not-ready'
      detail = listener === 'stopping' ? 'shutting down: finishing in-flight requests' : 'the public listener is not accepting connections yet'
    }
    return { status, store, checks, ...(detail !== undefined ? { detail } : {}), warnings }
  }

  /** Undefined when Redis answers a PING in time, else what went wrong. */
  async #ping (redis: Redis | Cluster): Promise<string | undefined> {
    if (redis.status !== 'ready') return `connection ${redis.status}`
    let timer: NodeJS.Timeout | undefined
    try {
      await Promise.race([
        redis.ping(),
        new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error('PING timed out')), this.#o.pingTimeout) })
      ])
      return undefined
    } catch (err) {
      return err instanceof Error ? err.message : String(err)
    } finally {
      clearTimeout(timer)
    }
  }

  async #checkSettings (redis: Redis | Cluster): Promise<void> {
    const nodes = redis instanceof Cluster ? redis.nodes('master') : [redis]
    const warnings: string[] = []
    for (const node of nodes) {
      const where = redis instanceof Cluster ? `${node.options.host ?? ''}:${node.options.port ?? ''}: ` : ''
      try {
        for (const w of redisSettingsWarnings(await readRedisSettings(node))) warnings.push(where + w)
      } catch (err) {
        // Redis refused the command (CONFIG disabled or not allowed): say so. Anything else is
        // the connection going away; the next 'ready' checks again.
        if (!(err instanceof Error) || err.name !== 'ReplyError') return
        warnings.push(`${where}could not check Redis memory settings (CONFIG GET refused: ${err.message}); ${UNCHECKABLE}`)
      }
    }
    this.#settings = { state: warnings.length === 0 ? 'ok' : 'warning', warnings }
    for (const w of warnings) this.#o.logger.warn(w)
  }
}
