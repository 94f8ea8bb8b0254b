/**
 * A circuit breaker, generic over what it guards: after `failures` consecutive failures spanning
 * at least `span` ms it opens and refuses calls unsent for `cooldown` ms, then lets one probe
 * through. What counts as a failure is the caller's `judge` (for Redis: redis-failures.ts).
 *
 *   closed ──(`failures` consecutive failures over `span`)──▶ open ──(`cooldown`)──▶ half-open
 *     ▲                                             ▲                               │
 *     └───────────── the probe succeeds ────────────┼──────── the probe fails ──────┘
 *
 * Half-open lets exactly one call through (the probe); every other call is bypassed until
 * the probe settles. Calls refused by an open breaker reject with StoreBypassedError (the
 * breakers guard the store: store/guard.ts), which the lifecycle reports as
 * `detail=store-bypassed` and does not log per request.
 *
 * The span: when the event loop stalls (a GC pause, a burst of requests), every command in
 * flight times out in the same instant, although the server answered: that is one event,
 * followed by successes once the replies are read, not an outage. A hung or dead server keeps
 * failing past the span.
 *
 * Time comes from a Clock; nothing here arms a timer: a breaker moves to half-open when a call
 * arrives after the cool-down.
 */
import type { Clock } from '../clock.ts'

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
 * An admitted call, as `admit` returns it: the breaker's generation when it was admitted, times
 * two, plus one for the probe (a number, so that admitting a call allocates nothing).
 */
export type Admission = number

/** Chains on an admitted call's promise in place of `run`, and tells `end` how the call ended. */
export type Chain = <T>(pending: Promise<T>, admission: Admission) => Promise<T>

/** How a failed call counts: towards opening, as proof the server is up, or neither. */
export type Verdict = 'failure' | 'success' | 'neutral'

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
  /** How a failed call counts (the error it rejected with). */
  judge: (err: unknown) => Verdict
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

  /**
   * Runs `call` unless the breaker is open (then rejects with StoreBypassedError, unsent) and
   * counts its outcome. Chained on the call's promise, without async frames. With `chain`, the
   * chaining is left to it (the guard's timed reads: store/deadlines.ts), which must hand the
   * admission to `end` once the call has ended: one promise per call instead of two.
   */
  run<T> (call: () => Promise<T>, chain?: Chain): Promise<T> {
    let admission: Admission
    try {
      admission = this.admit()
    } catch (err) {
      return Promise.reject(asError(err))
    }
    let pending: Promise<T>
    try {
      pending = call()
    } catch (err) {
      pending = Promise.reject(asError(err))
    }
    if (chain !== undefined) return chain(pending, admission)
    return pending.then((result) => {
      this.#settle('success', admission, undefined)
      return result
    }, (err: unknown) => {
      this.#settle(this.#o.judge(err), admission, err)
      return Promise.reject(asError(err))
    })
  }

  /** Throws StoreBypassedError when a call may not go through; else the admission to hand to `end` when it has ended. */
  admit (): Admission {
    const probe = this.#admit()
    return this.#generation * 2 + (probe ? 1 : 0)
  }

  /** Counts the end of an admitted call: `err` undefined for a success, else the error it failed with. */
  end (admission: Admission, err: Error | undefined): void {
    if (err === undefined) this.#settle('success', admission, undefined)
    else this.#settle(this.#o.judge(err), admission, err)
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

  #settle (verdict: Verdict, admission: Admission, cause: unknown): void {
    const probe = admission % 2 === 1
    // A call admitted before the last opening or closing (a probe overtaken by a later one too).
    if ((admission - (probe ? 1 : 0)) / 2 !== this.#generation) return
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

/** A rejection reason as an Error (a non-Error reason becomes an Error's message). */
export function asError (err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err))
}
