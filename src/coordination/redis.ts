/**
 * Redis implementations of the cluster-wide lock and message bus.
 * Lock keys share the URL's hash tag (one Cluster slot with its entries):
 * `${prefix}{<urlHash>}:lock:<purpose>:<variant>`.
 */
import { Cluster, Redis } from 'ioredis'
import type { CacheKey } from '../cache/key.ts'
import type { Bus } from './bus.ts'
import { newToken, type LockPurpose, type Locks } from './locks.ts'
import { createHash } from 'node:crypto'

/**
 * The URL's hash tag is computed as store/redis-keys.ts computes it (the first 16 characters
 * of its SHA-1 in base64url; test/coordination/redis.test.ts keeps the two equal), so a lock
 * lives in its entries' Cluster slot without coordination/ importing the store.
 */
export function lockKey (prefix: string, url: CacheKey, purpose: LockPurpose, variant: string): string {
  return `${prefix}{${createHash('sha1').update(url).digest('base64url').slice(0, 16)}}:lock:${purpose}:${variant}`
}

// Compare-and-delete: only the holder's token releases the lock.
const RELEASE_LUA = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`

// Set-if-absent, or renew when the token already holds it: a retry after a timed-out reply
// learns whether the first attempt took the lock.
const ACQUIRE_LUA = `
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if current then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`

interface LockCommands {
  cachegateLockRelease(key: string, token: string): Promise<number>
  cachegateLockAcquire(key: string, token: string, ttlMs: number): Promise<number>
}

export class RedisLocks implements Locks {
  readonly #client: Redis | Cluster
  readonly #prefix: string

  constructor (client: Redis | Cluster, prefix: string) {
    client.defineCommand('cachegateLockRelease', { lua: RELEASE_LUA, numberOfKeys: 1 })
    client.defineCommand('cachegateLockAcquire', { lua: ACQUIRE_LUA, numberOfKeys: 1 })
    this.#client = client
    this.#prefix = prefix
  }

  async acquire (url: CacheKey, purpose: LockPurpose, variant: string, ttlMs: number, token = newToken()): Promise<string | null> {
    const n = await (this.#client as unknown as LockCommands).cachegateLockAcquire(lockKey(this.#prefix, url, purpose, variant), token, Math.max(1, Math.ceil(ttlMs)))
    return n === 1 ? token : null
  }

  async release (url: CacheKey, purpose: LockPurpose, variant: string, token: string): Promise<boolean> {
    const n = await (this.#client as unknown as LockCommands).cachegateLockRelease(lockKey(this.#prefix, url, purpose, variant), token)
    return n === 1
  }

  async held (url: CacheKey, purpose: LockPurpose, variant: string): Promise<boolean> {
    return (await this.#client.exists(lockKey(this.#prefix, url, purpose, variant))) === 1
  }
}

/** Options without ioredis' commandTimeout (any number there arms a timer, 0 included). */
function withoutTimeout<T extends { commandTimeout?: number | undefined }> (options: T): Omit<T, 'commandTimeout'> {
  const rest: T = { ...options }
  delete rest.commandTimeout
  return rest
}

/**
 * Pub/sub over a dedicated subscriber connection (a subscribed connection can run no other
 * command). Publishing uses the shared client.
 */
export class RedisBus implements Bus {
  readonly #client: Redis | Cluster
  readonly #subscriber: Redis | Cluster
  readonly #handlers = new Map<string, Array<(message: string) => void>>()
  readonly #reconnectHandlers: Array<() => void> = []
  #readyOnce = false

  constructor (client: Redis | Cluster, onError: (err: unknown) => void) {
    this.#client = client
    // Subscribing waits for the connection and has no command timeout: it is not on a request path.
    this.#subscriber = client instanceof Cluster
      ? client.duplicate(undefined, { enableOfflineQueue: true, redisOptions: withoutTimeout(client.options.redisOptions ?? {}) })
      : new Redis({ ...withoutTimeout(client.options), enableOfflineQueue: true })
    this.#subscriber.on('error', onError)
    this.#subscriber.on('message', (channel: string, message: string) => {
      for (const h of this.#handlers.get(channel) ?? []) h(message)
    })
    this.#subscriber.on('ready', () => {
      if (this.#readyOnce) for (const h of this.#reconnectHandlers) h()
      this.#readyOnce = true
    })
  }

  async publish (channel: string, message: string): Promise<void> {
    await this.#client.publish(channel, message)
  }

  async subscribe (channel: string, handler: (message: string) => void): Promise<void> {
    const list = this.#handlers.get(channel)
    if (list !== undefined) {
      list.push(handler)
      return
    }
    this.#handlers.set(channel, [handler])
    await this.#subscriber.subscribe(channel)
  }

  onReconnect (handler: () => void): void {
    this.#reconnectHandlers.push(handler)
  }

  async close (): Promise<void> {
    this.#subscriber.disconnect()
  }
}
