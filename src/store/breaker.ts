/**
 * Circuit breakers in front of the shared store, its locks and its bus: when Redis is down,
 * hung or restarting, the gateway stops asking it and sends traffic straight to the origin
 * (coalescing stays inside each instance), instead of paying a command timeout on every
 * request. The Redis client already turns an outage into prompt rejections (no offline
 * queue, a command timeout); the breaker turns repeated rejections into no call at all.
 *
 *   closed ──(`failures` consecutive failures over `span`)──▶ open ──(`cooldown`)──▶ half-open
 *     ▲                                             ▲                               │
 *     └───────────── the probe succeeds ────────────┼──────── the probe fails ──────┘
 *
 * Half-open lets exactly one call through (the probe); every other call is bypassed until
 * the probe settles. Calls refused by an open breaker reject with StoreBypassedError, which
 * the lifecycle reports as `detail=store-bypassed` and does not log per request.
 *
 * Two breakers guard one Redis:
 * - `reads` counts a call that did not get an answer (timeout, connection refused or closed,
 *   cluster down): every store, lock and bus call goes through it.
 * - `writes` counts a write that Redis answered with a refusal (`OOM command not allowed`
 *   under maxmemory with noeviction, READONLY replica, MISCONF): puts and lock acquisitions go
 *   through it too, so a full Redis keeps serving hits while writes are skipped, instead of
 *   shipping every body to be refused.
 *
 * Consecutive failures must also span at least `span` ms (the gateway uses the command
 * timeout) before the breaker opens. When the event loop stalls (a GC pause, a burst of
 * requests), every command in flight times out in the same instant, although Redis answered:
 * that is one event, followed by successes once the replies are read, not an outage. A hung
 * or dead Redis keeps failing past the span.
 *
 * Time comes from a Clock; the gateway gives it the system clock even when the rest of the
 * gateway runs on a manual one, since it measures real I/O, like the command timeouts it
 * counts. Nothing here arms a timer: a breaker moves to half-open when a call arrives after
 * the cool-down.
 */
import type { CacheEntry } from '../cache/entry.ts'
import type { CacheKey, VariantId } from '../cache/key.ts'
import type { Clock } from '../clock.ts'
import type { Bus } from '../coordination/bus.ts'
import { newToken, type LockPurpose, type Locks } from '../coordination/locks.ts'
import type { InvalidEntryListener, PutOptions, Store, StoreLookup } from './store.ts'

export type BreakerState = 'closed' | 'open' | 'half-open'

/** A call the breaker refused without asking the store. */
export class StoreBypassedError extends Error {
  readonly code = 'CG_STORE_BYPASSED'
  readonly breaker: string
  constructor (breaker: string) {
    super(`the ${breaker} circuit breaker is open: the store is bypassed`)
    this.name = 'StoreBypassedError'
    this.breaker = breaker
  }
}

export function isStoreBypassed (err: unknown): err is StoreBypassedError {
  return err instanceof StoreBypassedError
}

/**
 * What a failed call says about Redis:
 * - `down`: no answer (command timeout, connection refused or closed, cluster down, loading);
 * - `refused`: Redis answered and refused a write (full, read-only, cannot persist);
 * - `answered`: Redis answered with another error (a script error): it is up;
 * - `bypassed`: a breaker refused the call;
 * - `other`: not a Redis failure (bad input caught before sending).
 */
export type FailureKind = 'down' | 'refused' | 'answered' | 'bypassed' | 'other'

const REFUSED = /^(OOM|READONLY|MISCONF|NOREPLICAS)\b/
const UNAVAILABLE = /^(LOADING|BUSY|CLUSTERDOWN|TRYAGAIN|MASTERDOWN|MOVED|ASK)\b/

export function redisFailureKind (err: unknown): FailureKind {
  if (err instanceof StoreBypassedError) return 'bypassed'
  if (!(err instanceof Error)) return 'down'
  if (err.name === 'ReplyError') {
    if (REFUSED.test(err.message)) return 'refused'
    return UNAVAILABLE.test(err.message) ? 'down' : 'answered'
  }
  // checkPut and reply checks in the stores throw these before or after talking to Redis.
  if (err instanceof TypeError || err instanceof RangeError) return 'other'
  // "Command timed out", "Stream isn't writeable…", "Connection is closed.", MaxRetriesPerRequestError,
  // ClusterAllFailedError, socket errors.
  return 'down'
}

type Verdict = 'failure' | 'success' | 'neutral'

export interface BreakerOptions {
  /** Name in logs and errors. */
  name: string
  /** Consecutive failures that open the breaker (at least 1). */
  failures: number
  /** Time the breaker stays open before one probe is let through (ms). */
  cooldown: number
  /** Least time from the first to the last of the consecutive failures that open it (ms); default 0. */
  span?: number
  clock: Clock
  /** How a failed call counts. */
  judge: (kind: FailureKind) => Verdict
  /** Every change of state, with the error that caused an opening. */
  onChange?: (state: BreakerState, previous: BreakerState, cause: unknown) => void
}

export class CircuitBreaker {
  readonly name: string
  readonly #o: BreakerOptions
  #state: BreakerState = 'closed'
  #failures = 0
  /** When the current run of consecutive failures began. */
  #streakStart = 0
  /** When the breaker last opened or last let a probe through. */
  #since = 0
  /** Bumped on every opening and closing: results of calls admitted earlier are ignored. */
  #generation = 0

  constructor (options: BreakerOptions) {
    if (!Number.isInteger(options.failures) || options.failures < 1) throw new RangeError(`failures must be a whole number of at least 1, got ${String(options.failures)}`)
    if (!Number.isFinite(options.cooldown) || options.cooldown < 0) throw new RangeError(`cooldown must be a number of ms, got ${String(options.cooldown)}`)
    if (options.span !== undefined && !(Number.isFinite(options.span) && options.span >= 0)) throw new RangeError(`span must be a number of ms, got ${String(options.span)}`)
    this.name = options.name
    this.#o = options
  }

  get state (): BreakerState {
    return this.#state
  }

  /** Runs `call` unless the breaker is open; counts its outcome. */
  async run<T> (call: () => Promise<T>): Promise<T> {
    const probe = this.#admit()
    const generation = this.#generation
    let result: T
    try {
      result = await call()
    } catch (err) {
      this.#settle(this.#o.judge(redisFailureKind(err)), probe, generation, err)
      throw err
    }
    this.#settle('success', probe, generation, undefined)
    return result
  }

  /**
   * `run` without the async frames, for the hot lookups: the same admission and settling,
   * chained on the call's promise (a refusal is a rejected promise, never a throw).
   */
  runChained<T> (call: () => Promise<T>): Promise<T> {
    let probe: boolean
    try {
      probe = this.#admit()
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)))
    }
    const generation = this.#generation
    let pending: Promise<T>
    try {
      pending = call()
    } catch (err) {
      pending = Promise.reject(err instanceof Error ? err : new Error(String(err)))
    }
    return pending.then((result) => {
      this.#settle('success', probe, generation, undefined)
      return result
    }, (err: unknown) => {
      this.#settle(this.#o.judge(redisFailureKind(err)), probe, generation, err)
      return Promise.reject(err instanceof Error ? err : new Error(String(err)))
    })
  }

  /** Throws StoreBypassedError when the call may not go through; true when it is the probe. */
  #admit (): boolean {
    if (this.#state === 'closed') return false
    const now = this.#o.clock.now()
    // The cool-down also bounds a probe that never settles: another is let through after it.
    if (now - this.#since < this.#o.cooldown) throw new StoreBypassedError(this.name)
    this.#since = now
    this.#move('half-open', undefined)
    return true
  }

  #settle (verdict: Verdict, probe: boolean, generation: number, cause: unknown): void {
    // A call admitted before the last opening or closing (a probe overtaken by a later one too).
    if (generation !== this.#generation) return
    if (probe) {
      // A neutral probe (bad input, or another breaker refused it) proves nothing: wait again.
      if (verdict === 'success') this.#close()
      else this.#open(cause)
      return
    }
    if (this.#state !== 'closed') return
    if (verdict === 'success') {
      this.#failures = 0
    } else if (verdict === 'failure') {
      const now = this.#o.clock.now()
      if (this.#failures === 0) this.#streakStart = now
      this.#failures++
      if (this.#failures >= this.#o.failures && now - this.#streakStart >= (this.#o.span ?? 0)) this.#open(cause)
    }
  }

  #open (cause: unknown): void {
    this.#since = this.#o.clock.now()
    this.#generation++
    this.#move('open', cause)
  }

  #close (): void {
    this.#failures = 0
    this.#generation++
    this.#move('closed', undefined)
  }

  #move (state: BreakerState, cause: unknown): void {
    const previous = this.#state
    this.#state = state
    if (previous !== state) this.#o.onChange?.(state, previous, cause)
  }
}

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

/** A read that got no answer within its deadline. */
export class ReadTimeoutError extends Error {
  constructor (ms: number) {
    super(`Command timed out (no reply within ${ms} ms)`)
    this.name = 'ReadTimeoutError'
  }
}

/**
 * Deadlines for calls, without punishing a busy event loop and without a timer per call. A
 * plain timer fires in the timers phase, before the poll phase reads the sockets: under load a
 * reply may already be waiting, unread. So an expired call is failed from a setImmediate, which
 * runs after the poll phase has read every socket that was ready: a timeout means "no reply in
 * time", not "reply not yet read". One interval per instance sweeps the pending calls (a timer
 * per call costs more than the lookup it guards); it is unref'd and stops when nothing waits.
 */
export class Deadlines {
  readonly #pending = new Set<{ at: number, expire: () => void }>()
  #timer: NodeJS.Timeout | undefined
  readonly #tick: number

  /** `tick`: how often deadlines are checked (ms): a call fails between `ms` and `ms + tick` after it started. */
  constructor (tick: number) {
    this.#tick = Math.max(1, tick)
  }

  run<T> (call: Promise<T>, ms: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let done = false
      const item = {
        at: performance.now() + ms,
        expire: () => {
          if (done) return
          done = true
          reject(new ReadTimeoutError(ms))
        }
      }
      this.#pending.add(item)
      if (this.#timer === undefined) {
        this.#timer = setInterval(() => this.#sweep(), this.#tick)
        this.#timer.unref()
      }
      call.then((value) => {
        this.#pending.delete(item)
        if (done) return
        done = true
        resolve(value)
      }, (err: unknown) => {
        this.#pending.delete(item)
        if (done) return
        done = true
        reject(err instanceof Error ? err : new Error(String(err)))
      })
    })
  }

  #sweep (): void {
    const now = performance.now()
    const expired: Array<{ expire: () => void }> = []
    for (const item of this.#pending) {
      if (item.at <= now) {
        expired.push(item)
        this.#pending.delete(item)
      }
    }
    if (expired.length > 0) setImmediate(() => { for (const item of expired) item.expire() })
    if (this.#pending.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer)
      this.#timer = undefined
    }
  }
}

/** The two breakers of one Redis, and wrappers that put them in front of its store, locks and bus. */
export class StoreGuard {
  readonly reads: CircuitBreaker
  readonly writes: CircuitBreaker
  readonly #readTimeout: number | undefined
  readonly #deadlines: Deadlines

  constructor (o: StoreGuardOptions) {
    this.#readTimeout = o.readTimeout
    this.#deadlines = new Deadlines(Math.min(10, (o.readTimeout ?? 50) / 5))
    const common = { failures: o.failures, cooldown: o.cooldown, clock: o.clock, ...(o.span !== undefined ? { span: o.span } : {}) }
    this.reads = new CircuitBreaker({
      ...common,
      name: 'store',
      // A refusal or a script error is an answer: Redis is up.
      judge: (kind) => kind === 'down' ? 'failure' : kind === 'refused' || kind === 'answered' ? 'success' : 'neutral',
      ...(o.onChange !== undefined ? { onChange: (s, p, c) => o.onChange?.('store', s, p, c) } : {})
    })
    this.writes = new CircuitBreaker({
      ...common,
      name: 'store-writes',
      // Unreachability is the reads breaker's business.
      judge: (kind) => kind === 'refused' ? 'failure' : kind === 'answered' ? 'success' : 'neutral',
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

  /** A longer call (index reads, deletes): bounded by ten read timeouts, at least a second. */
  async read<T> (call: () => Promise<T>): Promise<T> {
    const ms = this.#readTimeout
    return await this.reads.run(ms === undefined ? call : async () => await this.#deadlines.run(call(), Math.max(ms * 10, 1000)))
  }

  /** A read on the request path (lookup, lock, publish): bounded by `readTimeout`. */
  async quick<T> (call: () => Promise<T>): Promise<T> {
    const ms = this.#readTimeout
    return await this.reads.run(ms === undefined ? call : async () => await this.#deadlines.run(call(), ms))
  }

  /** `quick` in as few promise hops as possible: the lookups of every request. */
  lookupCall<T> (call: () => Promise<T>): Promise<T> {
    const ms = this.#readTimeout
    return this.reads.runChained(ms === undefined ? call : () => this.#deadlines.run(call(), ms))
  }

  /**
   * A fill or refresh lock acquisition: a write on the miss path, which goes to the origin
   * anyway, so it may wait longer than a lookup (four read timeouts, 200 ms to 1 s): on a busy
   * machine a reply past the read deadline would make this instance fetch although another
   * already does.
   */
  async lockWrite<T> (call: () => Promise<T>): Promise<T> {
    const ms = this.#readTimeout
    return await this.write(ms === undefined ? call : async () => await this.#deadlines.run(call(), Math.min(1000, Math.max(ms * 4, 200))))
  }

  async write<T> (call: () => Promise<T>): Promise<T> {
    return await this.writes.run(async () => await this.reads.run(call))
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
    return this.#guard.lookupCall(() => this.#inner.lookup(url))
  }

  async getVariant (url: CacheKey, variant: VariantId): Promise<CacheEntry | null> {
    return await this.#guard.lookupCall(() => this.#inner.getVariant(url, variant))
  }

  async put (url: CacheKey, variant: VariantId, entry: CacheEntry, options: PutOptions): Promise<void> {
    await this.#guard.write(async () => await this.#inner.put(url, variant, entry, options))
  }

  async deleteVariant (url: CacheKey, variant: VariantId): Promise<void> {
    await this.#guard.read(async () => await this.#inner.deleteVariant(url, variant))
  }

  async deleteUrl (url: CacheKey): Promise<number> {
    return await this.#guard.read(async () => await this.#inner.deleteUrl(url))
  }

  async markStale (url: CacheKey, at: number): Promise<number> {
    return await this.#guard.read(async () => await this.#inner.markStale(url, at))
  }

  async urlsForTag (tag: string): Promise<CacheKey[]> {
    return await this.#guard.read(async () => await this.#inner.urlsForTag(tag))
  }

  async urlsForPrefix (origin: string, prefix: string): Promise<CacheKey[]> {
    return await this.#guard.read(async () => await this.#inner.urlsForPrefix(origin, prefix))
  }

  async origins (): Promise<string[]> {
    return await this.#guard.read(async () => await this.#inner.origins())
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
    const ask = async (): Promise<string | null> => await this.#guard.lockWrite(async () => await this.#inner.acquire(url, purpose, variant, ttlMs, token))
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
    return await this.#guard.quick(async () => await this.#inner.release(url, purpose, variant, token))
  }

  async held (url: CacheKey, purpose: LockPurpose, variant: string): Promise<boolean> {
    return await this.#guard.quick(async () => await this.#inner.held(url, purpose, variant))
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
    await this.#guard.quick(async () => await this.#inner.publish(channel, message))
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
