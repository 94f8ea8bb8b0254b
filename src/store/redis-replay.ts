/**
 * Used webhook signatures shared by every instance on one Redis: `SET <prefix>replay:<id> 1
 * NX PX <ttl>` answers OK only to the first instance that sees a signature within its window.
 * When Redis cannot answer, this instance's own memory still refuses what it has seen
 * (replays across instances are then possible until Redis is back: reported through onError).
 */
import type { Cluster, Redis } from 'ioredis'
import { BoundedMap } from '../bounded-map.ts'

/** Satisfies http/admin-auth.ts ReplayGuard (structurally: store/ does not import http/). */
export class RedisReplayGuard {
  readonly #client: Redis | Cluster
  readonly #prefix: string
  /** Until when (ms) each id was claimed here: the fallback while Redis cannot answer. */
  readonly #local = new BoundedMap<string, number>({ maxEntries: 100_000, maxBytes: 16 * 1024 * 1024 })
  readonly #onError: (err: unknown) => void
  readonly #timeoutMs: number

  /** `timeoutMs`: how long to wait for Redis (this client has no command timeout of its own). */
  constructor (client: Redis | Cluster, prefix: string, timeoutMs: number, onError: (err: unknown) => void) {
    this.#client = client
    this.#prefix = prefix
    this.#timeoutMs = timeoutMs
    this.#onError = onError
  }

  async claim (id: string, ttlMs: number, now: number): Promise<boolean> {
    const until = this.#local.peek(id)
    if (until !== undefined && until > now) return false
    this.#local.set(id, now + ttlMs)
    try {
      const set = this.#client.set(`${this.#prefix}replay:${id}`, '1', 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX')
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`Redis did not answer within ${this.#timeoutMs} ms`)), this.#timeoutMs)
      })
      try {
        return await Promise.race([set, timeout]) === 'OK'
      } finally {
        clearTimeout(timer)
        set.catch(() => undefined)
      }
    } catch (err) {
      this.#onError(err)
      return true
    }
  }
}
