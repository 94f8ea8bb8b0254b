/**
 * Request coalescing inside one instance. A Flight is one origin fetch that any number of
 * clients can share. A waiter is answered like a stored entry when it can be: once the body
 * has arrived whole and was kept (within maxBytes), every waiter gets the one Buffer and one
 * entry (so one precomputed header block), with no stream per waiter; waiters that arrive
 * before the end wait for it. A body too large to keep, or still arriving `holdMs` after the
 * head (the moment waiters must start), streams instead: each such subscriber gets a stream
 * that replays the bytes received so far and then follows the live body, so a client that
 * arrives mid-transfer is answered without a second fetch and without a second copy of the
 * body per client. The fetch does not belong to any one client: if the first client goes
 * away, the others (and the store) still get the whole body. The leader subscribes as soon as
 * it starts the flight, so no byte is read before someone can receive it.
 */
import { PassThrough, type Readable } from 'node:stream'
import type { CacheEntry } from '../cache/entry.ts'
import type { OriginResponse } from '../origin/client.ts'
import { originError } from '../origin/client.ts'
import type { GatewayError } from '../errors.ts'
import { sameVariant, variantValues } from '../cache/vary.ts'

export interface FlightHead {
  status: number
  headers: Record<string, string | string[]>
  requestTime: number
  responseTime: number
}

/** An origin response and when it was asked for and received (RFC 9111 §4.2.3 request_time, response_time). */
export interface Fetched {
  res: OriginResponse
  requestTime: number
  responseTime: number
}

export type FlightEnd =
  /** The whole body arrived; `body` is set when it was kept (within maxBytes). */
  | { complete: true, body: Buffer | undefined, bytes: number }
  | { complete: false, error: GatewayError }

/** How a waiter is answered from a flight it may share. */
export type Shared =
  /** The body arrived whole and was kept: the response as the leader stores it (one object for every waiter). */
  | { kind: 'entry', head: FlightHead, entry: CacheEntry }
  /**
   * The body is too large to keep, or was still arriving when the waiter had to start; `stored`:
   * the response as the leader stores it, without its body (its fields are the ones a waiter may see).
   */
  | { kind: 'stream', head: FlightHead, body: Readable, stored: Omit<CacheEntry, 'body'> | undefined }
  /** The body failed while the waiter waited for it: nothing was sent to it, so it gets the error, never part of a body. */
  | { kind: 'failed', head: FlightHead, error: GatewayError }

/**
 * How long after the head waiters wait for the rest of a body that may be kept before they are
 * streamed what has come so far: a body that arrives within it (most, from a nearby origin)
 * is sent to every waiter whole; a slow one starts flowing to them at this point at the latest.
 */
export const HOLD_MS = 100

type Waiter = (answer: Shared | undefined) => void

export class Flight {
  readonly head: Promise<FlightHead>
  readonly end: Promise<FlightEnd>
  /** Set by the leader once it knows whether others may be given this response. */
  shareable = true
  /** Vary values the response was produced for (set by the leader), to match waiters against. */
  varyValues: Record<string, string | null> | undefined
  /** Set by the leader once the response is being stored (its Cache-Status says `stored`). */
  stored = false
  /**
   * The store write, set by the leader: the flight stays joinable (its body replayed) until the
   * write settles, so a miss between the body's end and the entry's arrival in the store joins
   * it instead of fetching again.
   */
  writing: Promise<unknown> | undefined

  readonly #chunks: Buffer[] = []
  #bytes = 0
  #keeping = true
  #finished = false
  #error: GatewayError | undefined
  readonly #subscribers = new Set<PassThrough>()
  readonly #maxBytes: number
  readonly #holdMs: number
  /** The stored response without its body, set by the leader (`answerAs`): waiters may then wait for the whole body. */
  #meta: Omit<CacheEntry, 'body'> | undefined
  /** The body once complete and kept. */
  #body: Buffer | undefined
  #entry: CacheEntry | undefined
  /** Waiters stop waiting for the whole body (it outgrew maxBytes, or `holdMs` passed): they stream. */
  #released = false
  #hold: NodeJS.Timeout | undefined
  readonly #waiting: Array<{ head: FlightHead, answer: Waiter }> = []

  /**
   * `start` fetches (or hands over a response already fetched) and says when it was asked for
   * and received; bodies over `maxBytes` are not kept; `holdMs` (default HOLD_MS) bounds how
   * long waiters wait for the whole body after the head.
   */
  constructor (start: () => Promise<Fetched>, maxBytes: number, options: { holdMs?: number } = {}) {
    this.#maxBytes = maxBytes
    this.#holdMs = options.holdMs ?? HOLD_MS
    const fetched = start()
    this.head = fetched.then(({ res, requestTime, responseTime }) => ({ status: res.status, headers: res.headers, requestTime, responseTime }))
    this.end = fetched.then(
      async ({ res }) => await this.#pump(res),
      (err: unknown) => ({ complete: false as const, error: originError(err) })
    )
    // Callers observe failures through head/end; never leave a rejection unhandled here.
    this.head.catch(() => undefined)
  }

  async #pump (res: OriginResponse): Promise<FlightEnd> {
    const declared = Number(res.headers['content-length'])
    // A body announced too large to keep is streamed to every waiter from the start.
    if (declared > this.#maxBytes) this.#release()
    else {
      // Released after the event loop's next look at I/O: on a process that was not scheduled
      // for a while, the rest of a body that arrived meanwhile is read first.
      this.#hold = setTimeout(() => { setImmediate(() => { this.#release() }) }, this.#holdMs)
      this.#hold.unref()
    }
    try {
      for await (const chunk of res.body) {
        const buf = chunk as Buffer
        if (this.#keeping && this.#bytes + buf.length > this.#maxBytes) {
          // Too large to keep: waiters subscribe (replaying what came so far) before the replay
          // buffer is dropped, then get this chunk like every subscriber.
          this.#release()
          this.#keeping = false
          this.#chunks.length = 0
        }
        this.#bytes += buf.length
        if (this.#keeping) this.#chunks.push(buf)
        await this.#write(buf)
      }
      if (Number.isFinite(declared) && res.headers['content-length'] !== undefined && declared !== this.#bytes) {
        throw Object.assign(new Error(`content-length ${declared} but ${this.#bytes} bytes received`), { code: 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' })
      }
    } catch (err) {
      const error = originError(err)
      this.#error = error
      this.#finished = true
      clearTimeout(this.#hold)
      this.#chunks.length = 0
      for (const s of this.#subscribers) s.destroy(error)
      this.#subscribers.clear()
      for (const w of this.#waiting.splice(0)) w.answer({ kind: 'failed', head: w.head, error })
      return { complete: false, error }
    }
    this.#finished = true
    clearTimeout(this.#hold)
    for (const s of this.#subscribers) s.end()
    this.#subscribers.clear()
    const body = this.#keeping ? Buffer.concat(this.#chunks, this.#bytes) : undefined
    // Late subscribers (the flight is still referenced by its waiters) replay one buffer.
    this.#chunks.length = 0
    if (body !== undefined) this.#chunks.push(body)
    this.#body = body
    for (const w of this.#waiting.splice(0)) w.answer(this.#whole(w.head) ?? this.#stream(w.head))
    return { complete: true, body, bytes: this.#bytes }
  }

  /** Writes a chunk to every streaming subscriber; resolves when none of them needs a pause. */
  async #write (buf: Buffer): Promise<void> {
    const waits: Array<Promise<void>> = []
    for (const s of this.#subscribers) {
      if (!s.write(buf)) waits.push(new Promise((resolve) => { s.once('drain', resolve); s.once('close', resolve) }))
    }
    if (waits.length > 0) await Promise.all(waits)
  }

  /** Waiters stop waiting for the whole body and stream from here on (synchronously, while the bytes so far can be replayed). */
  #release (): void {
    this.#released = true
    clearTimeout(this.#hold)
    for (const w of this.#waiting.splice(0)) w.answer(this.#stream(w.head))
  }

  /**
   * Answers waiters like a stored entry from here on: `meta` is the response as the leader
   * stores it (its fields without set-cookie, age, hop-by-hop and qualified no-cache fields,
   * and its variant values); the body is added once it is complete.
   */
  answerAs (meta: Omit<CacheEntry, 'body'> | undefined): void {
    this.#meta = meta
  }

  /** The response as a stored entry once the body is complete and kept and the leader gave its metadata; one object for all. */
  #whole (head: FlightHead): Shared | undefined {
    if (this.#entry === undefined && this.#meta !== undefined && this.#body !== undefined) this.#entry = { ...this.#meta, body: this.#body }
    return this.#entry !== undefined && this.shareable ? { kind: 'entry', head, entry: this.#entry } : undefined
  }

  #stream (head: FlightHead): Shared | undefined {
    if (!this.shareable) return undefined
    const body = this.subscribe()
    return body === null ? undefined : { kind: 'stream', head, body, stored: this.#meta }
  }

  /**
   * How a request with these forwarded headers is answered from this flight, once the head has
   * arrived: the stored-entry form when the body is (or, within `holdMs`, becomes) complete,
   * else a stream; undefined when the fetch failed before this request joined, the leader
   * refused to share the response, the request selects another variant, or the body can no
   * longer be replayed.
   */
  async share (forward: Readonly<Record<string, string | string[]>>): Promise<Shared | undefined> {
    let head: FlightHead
    try {
      head = await this.head
    } catch {
      return undefined
    }
    const values = this.varyValues
    if (!this.shareable || values === undefined) return undefined
    const names = Object.keys(values)
    const spec = { headers: names.filter((k) => !k.startsWith('cookie:')), cookies: names.filter((k) => k.startsWith('cookie:')).map((k) => k.slice(7)) }
    if (!sameVariant(values, variantValues(spec, forward))) return undefined
    const whole = this.#whole(head)
    if (whole !== undefined) return whole
    if (this.#meta !== undefined && !this.#finished && !this.#released && this.#keeping) {
      return await new Promise<Shared | undefined>((resolve) => { this.#waiting.push({ head, answer: resolve }) })
    }
    return this.#stream(head)
  }

  /**
   * A stream of the whole body for one client, or null when the bytes already sent cannot be
   * replayed (the body outgrew the replay buffer) or the fetch failed.
   */
  subscribe (): Readable | null {
    if (this.#error !== undefined) return null
    if (!this.#keeping && this.#bytes > 0) return null
    const out = new PassThrough()
    for (const c of this.#chunks) out.write(c)
    if (this.#finished) {
      out.end()
      return out
    }
    this.#subscribers.add(out)
    out.once('close', () => this.#subscribers.delete(out))
    return out
  }
}

/**
 * The flights in progress, by URL. A URL may have several (one per variant, or a flight that
 * turned out unshareable next to its replacement); a request joins any whose variant values
 * match once its head has arrived, whatever the store said about the variant (a lookup that
 * timed out knows none), so one instance never makes two fetches of a key that could be shared.
 */
export class Coalescer {
  readonly #flights = new Map<string, Flight[]>()

  /** The flights of one URL, oldest first. */
  flights (url: string): readonly Flight[] {
    return this.#flights.get(url) ?? []
  }

  /** The oldest flight of the URL not in `tried` (the flights a request could not join). */
  untried (url: string, tried: ReadonlySet<Flight>): Flight | undefined {
    return this.flights(url).find((f) => !tried.has(f))
  }

  /** Offers a flight to requests for `url` until its body ends (or it is forgotten). */
  add (url: string, flight: Flight): void {
    const list = this.#flights.get(url)
    if (list === undefined) this.#flights.set(url, [flight])
    else list.push(flight)
    const done = (): void => { this.forget(url, flight) }
    flight.end.then(async () => await flight.writing).then(done, done)
  }

  /** Stop offering a flight to new waiters (e.g. once it is known to be unshareable). */
  forget (url: string, flight: Flight): void {
    const list = this.#flights.get(url)
    if (list === undefined) return
    const i = list.indexOf(flight)
    if (i >= 0) list.splice(i, 1)
    if (list.length === 0) this.#flights.delete(url)
  }
}
