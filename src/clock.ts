/**
 * The one source of wall-clock time in src/. Everything that asks "what time is it"
 * takes a Clock, so tests drive time with a manual clock instead of sleeping.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number
}

export const systemClock: Clock = { now: () => Date.now() }

/** A clock that moves only when told to; for tests and simulations. */
export class ManualClock implements Clock {
  #now: number
  constructor (start = Date.UTC(2026, 0, 1)) {
    this.#now = start
  }

  now (): number {
    return this.#now
  }

  /** Moves time forward by `ms` milliseconds. */
  advance (ms: number): void {
    this.#now += ms
  }

  set (ms: number): void {
    this.#now = ms
  }
}
