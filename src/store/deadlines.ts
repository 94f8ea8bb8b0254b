/**
 * Deadlines for Redis calls (the sweeper), measured so that a busy event loop does not fail a
 * reply that has arrived but not yet been read.
 */

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
