/**
 * The two circuit breakers of one Redis (circuit-breaker.ts, judged by redis-failures.ts) in
 * front of its store, its locks and its bus: when Redis is down, hung or restarting, the
 * gateway stops asking it and sends traffic straight to the origin (coalescing stays inside
 * each instance), instead of paying a command timeout on every request. The Redis client
 * already turns an outage into prompt rejections (no offline queue, a command timeout); the
 * breakers turn repeated rejections into no call at all.
 *
 * - `reads` counts a call that got no answer: every store, lock and bus call goes through it.
 * - `writes` counts a write Redis refused: puts and lock acquisitions go through it too.
 *
 * Every call goes through `call(kind, fn)`; its kind says which breakers and which deadline
 * (deadlines.ts) apply. The gateway gives the guard the system clock even when the rest of the
 * gateway runs on a manual one, since it measures real I/O, like the command timeouts it counts.
 */
import type { CacheEntry } from '../cache/entry.ts'
import type { CacheKey, VariantId } from '../cache/key.ts'
import type { Clock } from '../clock.ts'
import type { Bus } from '../coordination/bus.ts'
import { newToken, type LockPurpose, type Locks } from '../coordination/locks.ts'
import { CircuitBreaker, type BreakerState, type Chain } from './circuit-breaker.ts'
import { Deadlines, ReadTimeoutError } from './deadlines.ts'
import { judgeReads, judgeWrites } from './redis-failures.ts'
import type { InvalidEntryListener, PutOptions, Store, StoreLookup } from './store.ts'

export interface StoreGuardOptions {
  /** Consecutive failures that open a breaker. */
  failures: number
  /** Time a breaker stays open before it lets one probe through (ms). */
  cooldown: number
  /** Least time the consecutive failures must span (ms); see above. */
  span?: number
  clock: Clock
  onChange?: (breaker: string, state: BreakerState, previous: BreakerState, cause: unknown) => void
  /**
   * Deadline for a read (ms), measured so that a busy event loop does not fail a reply that
   * has arrived but not yet been read (see `withDeadline`). The client's own command timeout
   * should then be a longer safety net.
   */
  readTimeout?: number
}

/**
 * What a call is, which decides its breakers and deadline:
 * - `quick`: a read on the request path (lookup, lock release or check, publish), within `readTimeout`;
 * - `slow`: a longer call (index reads, deletes, purges), within ten read timeouts, at least a second;
 * - `write`: a put, through both breakers, bounded by the client's own command timeout;
 * - `lock`: a fill or refresh lock acquisition, through both breakers: a write on the miss
 *   path, which goes to the origin anyway, so it may wait longer than a lookup (four read
 *   timeouts, 200 ms to 1 s): on a busy machine a reply past the read deadline would make this
 *   instance fetch although another already does.
 */
export type CallKind = 'quick' | 'slow' | 'write' | 'lock'

export class StoreGuard {
  readonly reads: CircuitBreaker
  readonly writes: CircuitBreaker
  readonly #readTimeout: number | undefined
  readonly #deadlines: Deadlines
  /**
   * Quick and slow reads: the deadline's promise counts the end in the reads breaker, so a read
   * (every lookup) costs one promise, not one for the deadline and one for the breaker.
   * Undefined without a read timeout.
   */
  readonly #quick: Chain | undefined
  readonly #slow: Chain | undefined

  constructor (o: StoreGuardOptions) {
    this.#readTimeout = o.readTimeout
    this.#deadlines = new Deadlines(Math.min(10, (o.readTimeout ?? 50) / 5))
    const timed = (ms: number | undefined): Chain | undefined =>
      ms === undefined ? undefined : (pending, admission) => this.#deadlines.run(pending, ms, this.reads, admission)
    this.#quick = timed(this.#deadline('quick'))
    this.#slow = timed(this.#deadline('slow'))
    const common = { failures: o.failures, cooldown: o.cooldown, clock: o.clock, ...(o.span !== undefined ? { span: o.span } : {}) }
    this.reads = new CircuitBreaker({
      ...common,
      name: 'store',
      judge: judgeReads,
      ...(o.onChange !== undefined ? { onChange: (s, p, c) => o.onChange?.('store', s, p, c) } : {})
    })
    this.writes = new CircuitBreaker({
      ...common,
      name: 'store-writes',
      judge: judgeWrites,
      ...(o.onChange !== undefined ? { onChange: (s, p, c) => o.onChange?.('store-writes', s, p, c) } : {})
    })
  }

  get readTimeout (): number | undefined {
    return this.#readTimeout
  }

  /** The state to report: open when either breaker is open. */
  get state (): { reads: BreakerState, writes: BreakerState } {
    return { reads: this.reads.state, writes: this.writes.state }
  }

  /** Runs `fn` through the breakers and within the deadline of its kind (a refusal is a rejection, never a throw). */
  call<T> (kind: CallKind, fn: () => Promise<T>): Promise<T> {
    if (kind === 'quick' || kind === 'slow') return this.reads.run(fn, kind === 'quick' ? this.#quick : this.#slow)
    const ms = this.#deadline(kind)
    const bounded = ms === undefined ? fn : () => this.#deadlines.run(fn(), ms)
    return this.writes.run(() => this.reads.run(bounded))
  }

  #deadline (kind: CallKind): number | undefined {
    const ms = this.#readTimeout
    if (ms === undefined) return undefined
    switch (kind) {
      case 'quick': return ms
      case 'slow': return Math.max(ms * 10, 1000)
      case 'lock': return Math.min(1000, Math.max(ms * 4, 200))
      case 'write': return undefined
    }
  }

  store (inner: Store): Store {
    return new GuardedStore(inner, this)
  }

  locks (inner: Locks): Locks {
    return new GuardedLocks(inner, this)
  }

  bus (inner: Bus): Bus {
    return new GuardedBus(inner, this)
  }
}

/** A Store whose calls go through the guard's breakers. Deletes and purges are not gated on the write breaker: Redis accepts them when full. */
class GuardedStore implements Store {
  readonly kind: Store['kind']
  readonly #inner: Store
  readonly #guard: StoreGuard

  constructor (inner: Store, guard: StoreGuard) {
    this.kind = inner.kind
    this.#inner = inner
    this.#guard = guard
  }

  lookup (url: CacheKey): Promise<StoreLookup> {
    return this.#guard.call('quick', () => this.#inner.lookup(url))
  }

  async getVariant (url: CacheKey, variant: VariantId): Promise<CacheEntry | null> {
    return await this.#guard.call('quick', () => this.#inner.getVariant(url, variant))
  }

  async put (url: CacheKey, variant: VariantId, entry: CacheEntry, options: PutOptions): Promise<void> {
    await this.#guard.call('write', () => this.#inner.put(url, variant, entry, options))
  }

  async deleteVariant (url: CacheKey, variant: VariantId): Promise<void> {
    await this.#guard.call('slow', () => this.#inner.deleteVariant(url, variant))
  }

  async deleteUrl (url: CacheKey): Promise<number> {
    return await this.#guard.call('slow', () => this.#inner.deleteUrl(url))
  }

  async markStale (url: CacheKey, at: number): Promise<number> {
    return await this.#guard.call('slow', () => this.#inner.markStale(url, at))
  }

  async urlsForTag (tag: string): Promise<CacheKey[]> {
    return await this.#guard.call('slow', () => this.#inner.urlsForTag(tag))
  }

  async urlsForPrefix (origin: string, prefix: string): Promise<CacheKey[]> {
    return await this.#guard.call('slow', () => this.#inner.urlsForPrefix(origin, prefix))
  }

  async origins (): Promise<string[]> {
    return await this.#guard.call('slow', () => this.#inner.origins())
  }

  /** Refused entries are reported by the store behind the guard (it deletes them itself). */
  onInvalidEntry (listener: InvalidEntryListener): () => void {
    return this.#inner.onInvalidEntry?.(listener) ?? (() => undefined)
  }

  async close (): Promise<void> {
    await this.#inner.close()
  }
}

/** Fill and refresh locks: acquiring writes a key (refused when Redis is full), releasing and checking do not. */
class GuardedLocks implements Locks {
  readonly #inner: Locks
  readonly #guard: StoreGuard

  constructor (inner: Locks, guard: StoreGuard) {
    this.#inner = inner
    this.#guard = guard
  }

  async acquire (url: CacheKey, purpose: LockPurpose, variant: string, ttlMs: number, token = newToken()): Promise<string | null> {
    const ask = async (): Promise<string | null> => await this.#guard.call('lock', () => this.#inner.acquire(url, purpose, variant, ttlMs, token))
    try {
      return await ask()
    } catch (err) {
      // A reply past the deadline leaves it unknown whether Redis took the lock (on a busy
      // machine it usually did, and this instance must not fetch next to the one it told to
      // wait): asking again with the same token tells, since acquiring is idempotent for its
      // token. An answer (a refusal) or a bypass is final.
      if (!(err instanceof ReadTimeoutError)) throw err
      return await ask()
    }
  }

  async release (url: CacheKey, purpose: LockPurpose, variant: string, token: string): Promise<boolean> {
    return await this.#guard.call('quick', () => this.#inner.release(url, purpose, variant, token))
  }

  async held (url: CacheKey, purpose: LockPurpose, variant: string): Promise<boolean> {
    return await this.#guard.call('quick', () => this.#inner.held(url, purpose, variant))
  }
}

/** Publishing goes through the breaker; subscriptions live on their own connection and reconnect by themselves. */
class GuardedBus implements Bus {
  readonly #inner: Bus
  readonly #guard: StoreGuard

  constructor (inner: Bus, guard: StoreGuard) {
    this.#inner = inner
    this.#guard = guard
  }

  async publish (channel: string, message: string): Promise<void> {
    await this.#guard.call('quick', () => this.#inner.publish(channel, message))
  }

  async subscribe (channel: string, handler: (message: string) => void): Promise<void> {
    await this.#inner.subscribe(channel, handler)
  }

  onReconnect (handler: () => void): void {
    this.#inner.onReconnect(handler)
  }

  async close (): Promise<void> {
    await this.#inner.close()
  }
}
