/**
 * The cluster fill protocol: one origin fetch per key across every instance sharing a store.
 *
 *   miss ─▶ gate(url, variant) ── first local caller asks the fill lock (the others share its answer)
 *            ├─ lock taken (or unknown: Redis failed) ─▶ lead: fetch, store, then release + announce
 *            ├─ lock held by this instance ───────────▶ filled (look in the store; fetch if absent)
 *            └─ lock held elsewhere ─▶ wait for the fill message, the lock's disappearance,
 *                                      or `wait` ms, whichever comes first ─▶ filled
 *
 * A fill message says how the fill ended: `stored` (look in the store), `uncacheable` (the
 * waiters fetch alone: hit-for-miss) or `failed` (look, and fetch if needed). Pub/sub is
 * at-most-once, so waiters also poll whether the lock still exists. The lock's TTL is `wait`,
 * so a crashed leader holds nobody up for longer. No decision about HTTP is made here.
 */
import type { CacheKey } from '../cache/key.ts'
import type { Bus } from '../coordination/bus.ts'
import { BoundedMap, type BoundedMapStats } from '../bounded-map.ts'
import { newToken, type Locks } from '../coordination/locks.ts'
import type { Tasks } from './tasks.ts'

/** Who fetches: this instance (with the lock's token when it took one), or another instance that filled it. */
export type Gate = { kind: 'lead', token: string | undefined } | { kind: 'filled', stored: boolean | undefined }

/** How a fill ended, as announced to waiters. */
export type FillResult = 'stored' | 'uncacheable' | 'failed'

export interface FillOptions {
  locks: Locks
  bus: Bus
  /** Channel name for fill messages (prefixed like the store's keys). */
  channel: string
  /** How long a waiter waits for another instance's fill, and the fill lock's TTL (ms); 0 turns coordination off. */
  wait: number
  tasks: Tasks
  /** Reports a failed lock or bus call ('lock', 'unlock', 'publish'); the protocol carries on. */
  onError: (op: 'lock' | 'unlock' | 'publish', err: unknown) => void
  /** Real time in ms for the own-fill records (the lock's TTL runs in Redis' real time). */
  now?: () => number
  /** Bounds of the own-fill records (URLs are chosen by clients). */
  bounds?: { maxEntries: number, maxBytes: number }
}

export class FillCoordinator {
  readonly #o: FillOptions
  readonly #now: () => number
  /** Gates being decided, by fill key: concurrent local misses share one lock request. */
  readonly #gates = new Map<string, Promise<Gate>>()
  /** Fill locks this instance holds (or held and could not release), until their TTL; a forgotten record only costs a wait. */
  readonly #ownFills: BoundedMap<string, number>
  /** Waiters for another instance's fill, by fill key. */
  readonly #waiters = new Map<string, Set<(stored: boolean | undefined) => void>>()
  #subscribed: Promise<void> | undefined

  constructor (options: FillOptions) {
    this.#o = options
    this.#now = options.now ?? (() => performance.now())
    this.#ownFills = new BoundedMap<string, number>(options.bounds ?? { maxEntries: 10_000, maxBytes: 8 * 1024 * 1024 })
  }

  /** Subscribes to fill messages; call once before serving. */
  async start (): Promise<void> {
    this.#subscribed ??= this.#o.bus.subscribe(this.#o.channel, (message) => { this.#onMessage(message) })
    await this.#subscribed
  }

  get ownFills (): BoundedMapStats {
    return this.#ownFills.stats()
  }

  /**
   * Who fetches `url` (variant `variant`, '?' for "any"). The first concurrent caller asks the
   * lock (`creator`); the others get the same gate and must not lead on it: they join the
   * creator's flight or look in the store.
   */
  async gate (url: CacheKey, variant: string): Promise<{ gate: Gate, creator: boolean }> {
    const id = fillKey(url, variant)
    const pending = this.#gates.get(id)
    if (pending !== undefined) return { gate: await pending, creator: false }
    const asked = this.#ask(url, variant, id)
    this.#gates.set(id, asked)
    try {
      return { gate: await asked, creator: true }
    } finally {
      this.#gates.delete(id)
    }
  }

  /**
   * Starts the end of a fill this instance leads with `token`: once `result` settles, the lock
   * is released and the waiters everywhere are told. Returns the function to call with the
   * result (a promise is adopted: the task waits for the store write); later calls are ignored.
   */
  lead (url: CacheKey, variant: string, token: string): (result: Promise<FillResult>) => void {
    const id = fillKey(url, variant)
    let settle!: (result: Promise<FillResult>) => void
    const outcome = new Promise<FillResult>((resolve) => { settle = resolve })
    this.#o.tasks.run('fill', async () => {
      let stored: FillResult = 'failed'
      try {
        stored = await outcome
      } finally {
        const released = await this.#o.locks.release(url, 'fill', variant, token).then(() => true, (err: unknown) => {
          this.#o.onError('unlock', err)
          return false
        })
        // A lock we could not release stays ours until its TTL: our own later misses must not wait on it.
        if (released) this.#ownFills.delete(id)
        await this.#o.bus.publish(this.#o.channel, JSON.stringify({ k: id, s: stored })).catch((err: unknown) => { this.#o.onError('publish', err) })
      }
    })
    return settle
  }

  async #ask (url: CacheKey, variant: string, id: string): Promise<Gate> {
    if (this.#o.wait <= 0) return { kind: 'lead', token: undefined }
    const mine = newToken()
    let token: string | null
    try {
      token = await this.#o.locks.acquire(url, 'fill', variant, this.#o.wait, mine)
    } catch (err) {
      // Unknown whether the lock was taken (Redis hung or down; the Redis locks already asked
      // twice when a reply was late), or the breaker is open: lead, and release and announce
      // with our token afterwards, so nobody elsewhere waits out the lock's TTL. Local misses of
      // this key share this gate and join this flight.
      this.#o.onError('lock', err)
      this.#own(id)
      return { kind: 'lead', token: mine }
    }
    if (token !== null) {
      this.#own(id)
      return { kind: 'lead', token }
    }
    // Held by this instance (a fill finishing, or one whose release failed): nothing to wait for
    // elsewhere; look in the store, and fetch if it is not there.
    const own = this.#ownFills.get(id)
    if (own !== undefined) {
      if (own > this.#now()) return { kind: 'filled', stored: undefined }
      this.#ownFills.delete(id)
    }
    return { kind: 'filled', stored: await this.#waitForFill(url, variant, id) }
  }

  #own (id: string): void {
    this.#ownFills.set(id, this.#now() + this.#o.wait)
  }

  /**
   * Resolves when another instance announces the fill (true: stored, false: uncacheable), or
   * undefined after `wait`, after which the waiter goes to the origin itself rather than failing.
   */
  async #waitForFill (url: CacheKey, variant: string, id: string): Promise<boolean | undefined> {
    return await new Promise((resolve) => {
      let waiters = this.#waiters.get(id)
      if (waiters === undefined) {
        waiters = new Set()
        this.#waiters.set(id, waiters)
      }
      const set = waiters
      const finish = (stored: boolean | undefined): void => {
        clearTimeout(timer)
        clearInterval(poll)
        set.delete(finish)
        if (set.size === 0 && this.#waiters.get(id) === set) this.#waiters.delete(id)
        resolve(stored)
      }
      const timer = setTimeout(() => { finish(undefined) }, this.#o.wait)
      set.add(finish)
      // The fill may have ended before we listened, or its message may be lost (pub/sub is
      // at-most-once): while waiting, check now and then whether the lock is gone, and if so
      // look again. A failed check just keeps waiting for the message or the deadline.
      const check = (): void => {
        this.#o.locks.held(url, 'fill', variant).then((held) => { if (!held) finish(true) }, () => undefined)
      }
      const poll = setInterval(check, Math.max(20, Math.min(250, this.#o.wait / 10)))
      check()
    })
  }

  #onMessage (message: string): void {
    let parsed: { k?: unknown, s?: unknown }
    try {
      parsed = JSON.parse(message) as { k?: unknown, s?: unknown }
    } catch {
      return
    }
    if (typeof parsed !== 'object' || parsed === null || typeof parsed.k !== 'string') return
    const waiters = this.#waiters.get(parsed.k)
    if (waiters === undefined) return
    this.#waiters.delete(parsed.k)
    const stored = parsed.s === 'stored' ? true : parsed.s === 'uncacheable' ? false : undefined
    for (const w of waiters) w(stored)
  }
}

/** The fill lock's identity in messages and local records. */
function fillKey (url: CacheKey, variant: string): string {
  return `${url}\n${variant}`
}
