/**
 * Deadlines for Redis calls (the sweeper), measured so that a busy event loop does not fail a
 * reply that has arrived but not yet been read.
 */
import { asError } from './circuit-breaker.ts'

/** A read that got no answer within its deadline. */
export class ReadTimeoutError extends Error {
  constructor (ms: number) {
    super(`Command timed out (no reply within ${ms} ms)`)
    this.name = 'ReadTimeoutError'
  }
}

/** Told how a timed call ended before its caller hears of it (the breaker counting it: circuit-breaker.ts). */
export interface EndCounter {
  end: (admission: number, err: Error | undefined) => void
}

/** A call being timed: an element of the sweeper's list, removed in O(1) when the call ends. */
class Timed {
  prev: Timed | undefined = undefined
  next: Timed | undefined = undefined
  /** Set when the call has ended one way or the other: whatever comes later changes nothing. */
  done = false

  constructor (
    readonly at: number,
    readonly ms: number,
    readonly resolve: (value: unknown) => void,
    readonly reject: (err: Error) => void,
    readonly counter: EndCounter | undefined,
    readonly admission: number
  ) {}

  fulfil (value: unknown): void {
    if (this.done) return
    this.done = true
    this.counter?.end(this.admission, undefined)
    this.resolve(value)
  }

  fail (err: Error): void {
    if (this.done) return
    this.done = true
    this.counter?.end(this.admission, err)
    this.reject(err)
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
  /** The calls waiting, in a doubly linked list: adding and removing one allocates and hashes nothing. */
  #head: Timed | undefined = undefined
  #size = 0
  #timer: NodeJS.Timeout | undefined
  readonly #tick: number

  /** `tick`: how often deadlines are checked (ms): a call fails between `ms` and `ms + tick` after it started. */
  constructor (tick: number) {
    this.#tick = Math.max(1, tick)
  }

  /**
   * `call`, failed with ReadTimeoutError when it has not ended `ms` after now. With a `counter`
   * (a circuit breaker and the call's admission), the end is counted there, whichever way it
   * comes, before the returned promise settles: one promise for the deadline and the count.
   */
  run<T> (call: Promise<T>, ms: number, counter?: EndCounter, admission = 0): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const item = new Timed(performance.now() + ms, ms, resolve as (value: unknown) => void, reject, counter, admission)
      this.#add(item)
      call.then((value) => {
        this.#remove(item)
        item.fulfil(value)
      }, (err: unknown) => {
        this.#remove(item)
        item.fail(asError(err))
      })
    })
  }

  #add (item: Timed): void {
    item.next = this.#head
    if (this.#head !== undefined) this.#head.prev = item
    this.#head = item
    this.#size++
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => this.#sweep(), this.#tick)
      this.#timer.unref()
    }
  }

  /** Takes the item out of the list (once: an expired item is taken out by the sweep). */
  #remove (item: Timed): void {
    if (item.prev === undefined && this.#head !== item) return
    if (item.prev !== undefined) item.prev.next = item.next
    else this.#head = item.next
    if (item.next !== undefined) item.next.prev = item.prev
    item.prev = undefined
    item.next = undefined
    this.#size--
  }

  #sweep (): void {
    const now = performance.now()
    const expired: Array<Timed> = []
    for (let item = this.#head; item !== undefined;) {
      const next = item.next
      if (item.at <= now) {
        this.#remove(item)
        expired.push(item)
      }
      item = next
    }
    if (expired.length > 0) setImmediate(() => { for (const item of expired) item.fail(new ReadTimeoutError(item.ms)) })
    if (this.#size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer)
      this.#timer = undefined
    }
  }
}
