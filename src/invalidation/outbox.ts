/**
 * The CDN forward outbox: batches accepted for a CDN wait here until they are delivered or
 * given up. One queue per configured CDN, consumed in order by one worker per CDN per
 * instance (forwarder.ts).
 *
 * - MemoryOutbox: an in-process queue. A batch accepted by an instance that stops before
 *   delivering it is lost (documented in the README): use Redis where that matters.
 * - RedisOutbox: one Redis stream per CDN with one consumer group; each instance is one
 *   consumer, so each batch is delivered by exactly one instance. A batch stays pending
 *   (unacknowledged) while it is retried. On a clean shutdown an instance hands its pending
 *   batches back to the stream (re-added with their attempt count, the old entry
 *   acknowledged); batches of an instance that died are claimed by another after
 *   `claimAfterMs` of silence (XAUTOCLAIM).
 */
import { randomUUID } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'
import type { Batch } from './cdn/types.ts'

export interface Job {
  /** Unique per batch, stable across retries and restarts. */
  id: string
  batch: Batch
  /** Attempts already made (by any instance). */
  attempts: number
}

/** A job taken from the outbox, to be acknowledged (done or given up) or handed back. */
export interface Delivery {
  job: Job
  /** Outbox-internal handle (the stream entry id). */
  ref: string
  /** The stored entry was not a job (written by hand, corrupted): acknowledge it away, send nothing. */
  invalid?: true
}

export interface Outbox {
  readonly kind: 'memory' | 'redis'
  /** Accepts jobs durably (Redis: once this resolves the jobs survive a restart); rejects when full or unavailable. */
  add(cdn: string, jobs: readonly Job[]): Promise<void>
  /** The next job for this CDN, or undefined when there is none right now. */
  next(cdn: string): Promise<Delivery | undefined>
  /** The job is finished (delivered or given up): remove it. */
  ack(cdn: string, delivery: Delivery): Promise<void>
  /** Hands a job this instance holds back to the queue with its attempt count (clean shutdown). */
  release(cdn: string, delivery: Delivery): Promise<void>
  /** Jobs waiting or in delivery for this CDN. */
  depth(cdn: string): Promise<number>
  /** Resolves when jobs may have arrived (added here, or after `pollMs`), or when `signal` aborts. */
  wait(cdn: string, signal: AbortSignal): Promise<void>
}

/** Jobs a CDN may have waiting at once; a purge beyond it is reported failed, not silently dropped. */
export const OUTBOX_MAX_JOBS = 10_000

/** Wakes the waiters of one CDN when jobs are added in this process. */
class Doorbell {
  readonly #waiters = new Map<string, Set<() => void>>()

  ring (cdn: string): void {
    const set = this.#waiters.get(cdn)
    if (set === undefined) return
    this.#waiters.delete(cdn)
    for (const wake of set) wake()
  }

  async wait (cdn: string, signal: AbortSignal, pollMs: number | undefined): Promise<void> {
    if (signal.aborted) return
    await new Promise<void>((resolve) => {
      let set = this.#waiters.get(cdn)
      if (set === undefined) this.#waiters.set(cdn, set = new Set())
      const timer = pollMs === undefined ? undefined : setTimeout(done, pollMs)
      timer?.unref()
      function done (): void {
        if (timer !== undefined) clearTimeout(timer)
        set?.delete(done)
        signal.removeEventListener('abort', done)
        resolve()
      }
      set.add(done)
      signal.addEventListener('abort', done, { once: true })
    })
  }
}

export class MemoryOutbox implements Outbox {
  readonly kind = 'memory'
  readonly #queues = new Map<string, { waiting: Job[], inFlight: number }>()
  readonly #bell = new Doorbell()
  readonly #max: number

  constructor (options: { maxJobs?: number } = {}) {
    this.#max = options.maxJobs ?? OUTBOX_MAX_JOBS
  }

  #queue (cdn: string): { waiting: Job[], inFlight: number } {
    let q = this.#queues.get(cdn)
    if (q === undefined) this.#queues.set(cdn, q = { waiting: [], inFlight: 0 })
    return q
  }

  async add (cdn: string, jobs: readonly Job[]): Promise<void> {
    const q = this.#queue(cdn)
    if (q.waiting.length + q.inFlight + jobs.length > this.#max) throw new Error(`the outbox for ${cdn} is full (${this.#max} batches waiting)`)
    q.waiting.push(...jobs.map((j) => structuredClone(j)))
    this.#bell.ring(cdn)
  }

  async next (cdn: string): Promise<Delivery | undefined> {
    const q = this.#queue(cdn)
    const job = q.waiting.shift()
    if (job === undefined) return undefined
    q.inFlight++
    return { job, ref: job.id }
  }

  async ack (cdn: string): Promise<void> {
    const q = this.#queue(cdn)
    q.inFlight = Math.max(0, q.inFlight - 1)
  }

  async release (cdn: string, delivery: Delivery): Promise<void> {
    const q = this.#queue(cdn)
    q.inFlight = Math.max(0, q.inFlight - 1)
    q.waiting.unshift(delivery.job)
  }

  async depth (cdn: string): Promise<number> {
    const q = this.#queue(cdn)
    return q.waiting.length + q.inFlight
  }

  async wait (cdn: string, signal: AbortSignal): Promise<void> {
    await this.#bell.wait(cdn, signal, undefined)
  }
}

export interface RedisOutboxOptions {
  client: Redis | Cluster
  keyPrefix: string
  /** How often an idle worker looks for jobs added by other instances (ms). */
  pollMs?: number
  /** How long a job may stay pending at a silent consumer before another instance claims it (ms). */
  claimAfterMs?: number
  maxJobs?: number
  /** This instance's consumer name (default: a random id). */
  consumer?: string
}

const GROUP = 'cachegate'

type StreamEntry = [id: string, fields: string[]]

export class RedisOutbox implements Outbox {
  readonly kind = 'redis'
  readonly #o: Required<Omit<RedisOutboxOptions, 'consumer'>> & { consumer: string }
  readonly #bell = new Doorbell()
  readonly #groups = new Set<string>()

  constructor (options: RedisOutboxOptions) {
    this.#o = {
      pollMs: 1000,
      claimAfterMs: 60_000,
      maxJobs: OUTBOX_MAX_JOBS,
      consumer: randomUUID(),
      ...options
    }
  }

  /** The stream of one CDN; the braces keep it in one Redis Cluster slot with nothing else in mind. */
  key (cdn: string): string {
    return `${this.#o.keyPrefix}cdn-outbox:{${cdn}}`
  }

  async #group (cdn: string): Promise<string> {
    const key = this.key(cdn)
    if (!this.#groups.has(cdn)) {
      try {
        // From the beginning of the stream: entries added before any instance created the group count too.
        await this.#o.client.xgroup('CREATE', key, GROUP, '0', 'MKSTREAM')
      } catch (err) {
        if (!(err as Error).message.includes('BUSYGROUP')) throw err
      }
      this.#groups.add(cdn)
    }
    return key
  }

  async add (cdn: string, jobs: readonly Job[]): Promise<void> {
    const key = await this.#group(cdn)
    const length = await this.#o.client.xlen(key)
    if (length + jobs.length > this.#o.maxJobs) throw new Error(`the outbox for ${cdn} is full (${this.#o.maxJobs} batches waiting)`)
    const multi = this.#o.client.multi()
    for (const job of jobs) multi.xadd(key, '*', 'job', JSON.stringify(job))
    const results = await multi.exec()
    const failed = results?.find(([err]) => err !== null)
    if (results === null || failed !== undefined) throw failed?.[0] ?? new Error('the outbox transaction was aborted')
    this.#bell.ring(cdn)
  }

  async next (cdn: string): Promise<Delivery | undefined> {
    const key = await this.#group(cdn)
    const client = this.#o.client
    // Jobs left pending by an instance that died: claimed once they have been idle long enough.
    const claimed = await client.xautoclaim(key, GROUP, this.#o.consumer, this.#o.claimAfterMs, '0-0', 'COUNT', 1) as [string, StreamEntry[], string[]?]
    const stolen = claimed[1][0]
    if (stolen !== undefined) return decode(stolen)
    const read = await client.xreadgroup('GROUP', GROUP, this.#o.consumer, 'COUNT', 1, 'STREAMS', key, '>') as Array<[string, StreamEntry[]]> | null
    const entry = read?.[0]?.[1][0]
    return entry === undefined ? undefined : decode(entry)
  }

  async ack (cdn: string, delivery: Delivery): Promise<void> {
    const key = this.key(cdn)
    await this.#o.client.multi().xack(key, GROUP, delivery.ref).xdel(key, delivery.ref).exec()
  }

  async release (cdn: string, delivery: Delivery): Promise<void> {
    const key = this.key(cdn)
    await this.#o.client.multi()
      .xadd(key, '*', 'job', JSON.stringify(delivery.job))
      .xack(key, GROUP, delivery.ref)
      .xdel(key, delivery.ref)
      .exec()
  }

  async depth (cdn: string): Promise<number> {
    return await this.#o.client.xlen(this.key(cdn))
  }

  async wait (cdn: string, signal: AbortSignal): Promise<void> {
    await this.#bell.wait(cdn, signal, this.#o.pollMs)
  }
}

/** A stream entry back to a job; an entry that is not one (written by hand, corrupted) is acknowledged away by the caller. */
function decode ([id, fields]: StreamEntry): Delivery {
  const text = fields[fields.indexOf('job') + 1]
  try {
    const parsed: unknown = JSON.parse(text ?? '')
    if (isJob(parsed)) return { job: parsed, ref: id }
  } catch {}
  return { job: { id, batch: { kind: 'urls', items: [], soft: false }, attempts: 0 }, ref: id, invalid: true }
}

function isJob (value: unknown): value is Job {
  if (typeof value !== 'object' || value === null) return false
  const v = value as Partial<Job>
  return typeof v.id === 'string' && typeof v.attempts === 'number' && typeof v.batch === 'object' && v.batch !== null &&
    ['urls', 'prefixes', 'tags', 'hosts', 'all'].includes(v.batch.kind) && Array.isArray(v.batch.items) &&
    v.batch.items.every((i) => typeof i === 'string') && typeof v.batch.soft === 'boolean'
}
