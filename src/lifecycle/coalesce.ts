/**
 * Request coalescing inside one instance. A Flight is one origin fetch that any number of
 * clients can subscribe to: each subscriber gets a stream that replays the bytes received
 * so far and then follows the live body, so a client that arrives mid-transfer is answered
 * without a second fetch and without a second copy of the body per client. The fetch does
 * not belong to any one client: if the first client goes away, the others (and the store)
 * still get the whole body. The leader subscribes as soon as it starts the flight, so no
 * byte is read before someone can receive it.
 */
import { PassThrough, type Readable } from 'node:stream'
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
  #error: Error | undefined
  readonly #subscribers = new Set<PassThrough>()
  readonly #maxBytes: number

  /** `start` fetches (or hands over a response already fetched) and says when it was asked for and received. */
  constructor (start: () => Promise<Fetched>, maxBytes: number) {
    this.#maxBytes = maxBytes
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
    try {
      for await (const chunk of res.body) {
        const buf = chunk as Buffer
        this.#bytes += buf.length
        if (this.#keeping) {
          if (this.#bytes > this.#maxBytes) {
            this.#keeping = false
            this.#chunks.length = 0
          } else {
            this.#chunks.push(buf)
          }
        }
        const waits: Array<Promise<void>> = []
        for (const s of this.#subscribers) {
          if (!s.write(buf)) waits.push(new Promise((resolve) => { s.once('drain', resolve); s.once('close', resolve) }))
        }
        if (waits.length > 0) await Promise.all(waits)
      }
      if (Number.isFinite(declared) && res.headers['content-length'] !== undefined && declared !== this.#bytes) {
        throw Object.assign(new Error(`content-length ${declared} but ${this.#bytes} bytes received`), { code: 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' })
      }
    } catch (err) {
      const error = originError(err)
      this.#error = error
      this.#finished = true
      this.#chunks.length = 0
      for (const s of this.#subscribers) s.destroy(error)
      this.#subscribers.clear()
      return { complete: false, error }
    }
    this.#finished = true
    for (const s of this.#subscribers) s.end()
    this.#subscribers.clear()
    const body = this.#keeping ? Buffer.concat(this.#chunks, this.#bytes) : undefined
    // Late subscribers (the flight is still referenced by its waiters) replay one buffer.
    this.#chunks.length = 0
    if (body !== undefined) this.#chunks.push(body)
    return { complete: true, body, bytes: this.#bytes }
  }

  /**
   * The head and a stream of the body for a request with these forwarded headers, once the head
   * has arrived; undefined when the fetch failed, the leader refused to share the response, the
   * request selects another variant, or the body can no longer be replayed.
   */
  async share (forward: Readonly<Record<string, string | string[]>>): Promise<{ head: FlightHead, body: Readable } | undefined> {
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
    const body = this.subscribe()
    return body === null ? undefined : { head, body }
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
