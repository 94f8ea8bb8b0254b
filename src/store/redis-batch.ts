/**
 * Reads of one standalone Redis batched per turn of the event loop: every read asked during a
 * turn goes out in ONE `MGET` (or a few, `maxKeys` keys each) once the turn's I/O has been read,
 * and the reply is fanned out to the reads in the order they were asked.
 *
 * Why: ioredis' auto-pipelining (5.x) already gathers the commands of a turn (it flushes from a
 * `setImmediate`) and writes them together, but each lookup stays a command of its own: a
 * `Command` object, its own reply parsed and a promise per command, a pipeline object and a
 * results array per batch, each callback re-queued with `process.nextTick`; and while one
 * auto-pipeline is in flight, the next turn's commands wait for its reply. Here a `setImmediate`
 * (it runs after the poll phase has read every ready socket) sends the lookups of all the
 * requests read in one turn as ONE command with one reply array, and batches do not wait for
 * each other.
 *
 * Failure mode: the reads of a batch fail together, each with the error the command failed with,
 * exactly as each of their own commands would have failed (connection down, not ready, command
 * timeout of the client, a reply error). Nothing is retried or swallowed. Deadlines stay per read:
 * whoever wraps a read (store/guard.ts) times it from when it was asked.
 *
 * Standalone Redis only: a Cluster spreads one URL's keys over its own slot, so MGET cannot span
 * the reads of different URLs (store/redis.ts keeps one MGET per lookup there).
 */
import { Command } from 'ioredis'
import type { Redis } from 'ioredis'
import { asError } from './circuit-breaker.ts'

/** A value read: the bytes, or null when the key does not exist (or holds no string). */
export type Value = Buffer | null

/** Builds a read's result from its values: `values[at]` … `values[at + keys.length - 1]`. */
export type Answer<T> = (values: readonly Value[], at: number) => T

interface Pending {
  keys: readonly string[]
  answer: Answer<unknown>
  resolve: (result: unknown) => void
  reject: (err: Error) => void
}

/** Keys per MGET: bounds one reply (and the wait of the last read in it) when a turn reads many. */
const MAX_KEYS = 256

export class ReadBatch {
  readonly #client: Redis
  readonly #maxKeys: number
  #queue: Pending[] = []
  #scheduled = false

  constructor (client: Redis, maxKeys = MAX_KEYS) {
    if (!Number.isSafeInteger(maxKeys) || maxKeys < 1) throw new RangeError(`maxKeys must be a whole number of at least 1, got ${String(maxKeys)}`)
    this.#client = client
    this.#maxKeys = maxKeys
  }

  /**
   * Reads `keys` (one slot's worth for a Cluster, any keys here) in the current turn's batch and
   * resolves with `answer(values, at)`; an `answer` that throws rejects this read only.
   */
  read<T> (keys: readonly string[], answer: Answer<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ keys, answer, resolve: resolve as (result: unknown) => void, reject })
      if (!this.#scheduled) {
        this.#scheduled = true
        setImmediate(this.#flush)
      }
    })
  }

  readonly #flush = (): void => {
    this.#scheduled = false
    const queue = this.#queue
    this.#queue = []
    let first = 0
    while (first < queue.length) {
      // At least one read per command, however many keys it has.
      let end = first + 1
      let count = queue[first]?.keys.length ?? 0
      while (end < queue.length && count + (queue[end]?.keys.length ?? 0) <= this.#maxKeys) count += queue[end++]?.keys.length ?? 0
      this.#send(queue.slice(first, end), count)
      first = end
    }
  }

  #send (reads: Pending[], count: number): void {
    const keys = new Array<string>(count)
    let n = 0
    for (const r of reads) for (const k of r.keys) keys[n++] = k
    // Sent as is, not through ioredis' auto-pipelining: the batch is the pipeline.
    const command = new Command('mget', keys, { replyEncoding: null })
    this.#client.sendCommand(command)
    ;(command.promise as Promise<unknown>).then((reply) => {
      if (!Array.isArray(reply) || reply.length !== count) {
        fail(reads, new TypeError(`unexpected Redis reply to MGET of ${count} keys`))
        return
      }
      const values = reply as Value[]
      let at = 0
      for (const r of reads) {
        try {
          r.resolve(r.answer(values, at))
        } catch (err) {
          r.reject(asError(err))
        }
        at += r.keys.length
      }
    }, (err: unknown) => { fail(reads, asError(err)) })
  }
}

function fail (reads: Pending[], err: Error): void {
  for (const r of reads) r.reject(err)
}
