/**
 * Cluster-wide locks for "one origin fetch per key": a lock has a random token and a TTL,
 * and only its owner can release it (compare-and-delete), so a crashed holder's lock
 * expires on its own. LocalLocks serves a single instance (memory store); RedisLocks
 * (src/coordination/redis.ts) serves every instance sharing a Redis.
 */
import { randomBytes } from 'node:crypto'
import type { CacheKey } from '../cache/key.ts'
import type { Clock } from '../clock.ts'

export type LockPurpose = 'fill' | 'refresh'

export interface Locks {
  /**
   * Takes the lock when free and returns its token; null when someone else holds it. The
   * caller may choose the token, so that after an error (the lock may or may not have been
   * taken) it can still release it, or ask again: acquiring with the token that already holds
   * the lock returns the token (and renews the TTL), so a retry after a timed-out reply learns
   * whether the first attempt took it.
   */
  acquire(url: CacheKey, purpose: LockPurpose, variant: string, ttlMs: number, token?: string): Promise<string | null>
  /** Releases the lock only if `token` still owns it. */
  release(url: CacheKey, purpose: LockPurpose, variant: string, token: string): Promise<boolean>
  /** Is the lock held by anyone right now? */
  held(url: CacheKey, purpose: LockPurpose, variant: string): Promise<boolean>
}

export function newToken (): string {
  return randomBytes(12).toString('base64url')
}

export class LocalLocks implements Locks {
  readonly #held = new Map<string, { token: string, until: number }>()
  readonly #clock: Clock

  constructor (clock: Clock) {
    this.#clock = clock
  }

  async acquire (url: CacheKey, purpose: LockPurpose, variant: string, ttlMs: number, token = newToken()): Promise<string | null> {
    const name = `${purpose}\n${url}\n${variant}`
    const now = this.#clock.now()
    const current = this.#held.get(name)
    if (current !== undefined && current.until > now && current.token !== token) return null
    this.#held.set(name, { token, until: now + ttlMs })
    return token
  }

  async release (url: CacheKey, purpose: LockPurpose, variant: string, token: string): Promise<boolean> {
    const name = `${purpose}\n${url}\n${variant}`
    if (this.#held.get(name)?.token !== token) return false
    this.#held.delete(name)
    return true
  }

  async held (url: CacheKey, purpose: LockPurpose, variant: string): Promise<boolean> {
    const current = this.#held.get(`${purpose}\n${url}\n${variant}`)
    return current !== undefined && current.until > this.#clock.now()
  }
}
