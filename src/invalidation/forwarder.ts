/**
 * CDN purge forwarding: after a purge succeeded at the gateway, the same purge is split into
 * each CDN's batches (providers in cdn/), accepted into the outbox, and delivered by one
 * worker per CDN, in order, with retries on 429, 5xx and network errors (exponential
 * backoff with jitter, or the provider's Retry-After). Gateway first, then CDN: the CDN
 * refetches from a gateway that already dropped its copy.
 *
 * The purge response waits for each batch's first attempt (bounded by the CDN's timeout) and
 * reports per CDN: `done` (every batch delivered), `failed` (a batch refused by the provider
 * or not accepted into the outbox, with the message) or `queued` (still being retried).
 * Credentials live only in the request headers the providers build; nothing here logs them.
 */
import { randomUUID } from 'node:crypto'
import { setTimeout as sleepFor } from 'node:timers/promises'
import { request as undiciRequest } from 'undici'
import type { Clock } from '../clock.ts'
import type { CdnConfig } from '../config/types.ts'
import type { Logger } from '../observability/logger.ts'
import { Akamai } from './cdn/akamai.ts'
import { Cloudflare } from './cdn/cloudflare.ts'
import { CloudFront } from './cdn/cloudfront.ts'
import { Fastly } from './cdn/fastly.ts'
import type { ApiRequest, CdnProvider, CdnPurge } from './cdn/types.ts'
import { Webhook } from './cdn/webhook.ts'
import type { Delivery, Job, Outbox } from './outbox.ts'

export type ForwardState = 'queued' | 'done' | 'failed'

export interface ForwardReport {
  cdn: string
  provider: string
  state: ForwardState
  /** API requests the purge was split into. */
  batches: number
  /** The provider's message (or ours) for a failed or retried batch. */
  message?: string
  /** Parts of the purge this provider cannot do. */
  refused?: string[]
}

export type CdnResult = 'done' | 'retried' | 'failed' | 'refused'

export interface ApiResponse {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

export interface ForwarderOptions {
  cdns: readonly CdnConfig[]
  outbox: Outbox
  clock: Clock
  logger: Logger
  /** Jitter source (default Math.random). */
  random?: () => number
  /** Waits between attempts; rejects or resolves early when `signal` aborts (tests inject one that does not sleep). */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>
  /** Sends one API request (default: undici, the CDN's timeout for headers and body). */
  send?: (request: ApiRequest, timeoutMs: number) => Promise<ApiResponse>
  onResult?: (provider: string, result: CdnResult) => void
}

/** First retry after about this long; doubled per attempt, capped at RETRY_MAX_MS. */
export const RETRY_BASE_MS = 1000
export const RETRY_MAX_MS = 300_000
/** Longest Retry-After honoured (a longer one is clamped to this). */
export const RETRY_AFTER_MAX_MS = 3_600_000

export function providerFor (config: CdnConfig): CdnProvider {
  switch (config.provider) {
    case 'cloudflare': return new Cloudflare(config)
    case 'fastly': return new Fastly(config)
    case 'akamai': return new Akamai(config)
    case 'cloudfront': return new CloudFront(config)
    case 'webhook': return new Webhook(config)
  }
}

/** The wait before attempt `attempts + 1`: exponential, with jitter in [50 %, 100 %] so instances do not retry in step. */
export function backoff (attempts: number, random: number): number {
  const full = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** Math.max(0, attempts - 1))
  return Math.round(full * (0.5 + random * 0.5))
}

/** RFC 9110 §10.2.3 Retry-After: delay-seconds or an HTTP-date; undefined when absent or malformed. */
export function retryAfterMs (value: string | string[] | undefined, now: number): number | undefined {
  const text = Array.isArray(value) ? value[0] : value
  if (text === undefined) return undefined
  const trimmed = text.trim()
  let ms: number
  if (/^\d{1,10}$/.test(trimmed)) ms = Number(trimmed) * 1000
  else {
    const at = Date.parse(trimmed)
    if (Number.isNaN(at)) return undefined
    ms = at - now
  }
  return Math.min(RETRY_AFTER_MAX_MS, Math.max(0, ms))
}

type Attempt = { kind: 'ok' } | { kind: 'fail', message: string } | { kind: 'retry', message: string, after: number | undefined }

interface Worker {
  config: CdnConfig
  provider: CdnProvider
  idle: boolean
  loop: Promise<void> | undefined
}

async function defaultSend (request: ApiRequest, timeoutMs: number): Promise<ApiResponse> {
  const res = await undiciRequest(request.url, {
    method: request.method,
    headers: request.headers,
    body: request.body === '' ? null : request.body,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs
  })
  const body = await res.body.text()
  return { status: res.statusCode, headers: res.headers, body }
}

async function defaultSleep (ms: number, signal: AbortSignal): Promise<void> {
  await sleepFor(ms, undefined, { signal }).catch(() => undefined)
}

export class Forwarder {
  readonly #o: ForwarderOptions
  readonly #workers: Worker[]
  readonly #abort = new AbortController()
  /** First outcome of each batch accepted by this instance, for the purge response; removed when settled or timed out. */
  readonly #waiters = new Map<string, (outcome: { state: ForwardState, message?: string }) => void>()
  readonly #idleWaiters = new Set<() => void>()
  #started = false

  constructor (options: ForwarderOptions) {
    this.#o = options
    this.#workers = options.cdns.map((config) => ({ config, provider: providerFor(config), idle: true, loop: undefined }))
  }

  get cdns (): readonly CdnConfig[] {
    return this.#o.cdns
  }

  /** Starts one worker per CDN; jobs already in the outbox (a restart) are delivered at once. */
  start (): void {
    if (this.#started) return
    this.#started = true
    for (const w of this.#workers) {
      w.idle = false
      w.loop = this.#run(w)
    }
  }

  /** Stops the workers; a batch being retried is handed back to the outbox with its attempt count. */
  async close (): Promise<void> {
    this.#abort.abort()
    await Promise.all(this.#workers.map(async (w) => await w.loop))
    for (const wake of this.#idleWaiters) wake()
  }

  /** Depth of each CDN's outbox (for the gauge); a CDN whose outbox cannot be read is left out. */
  async depths (): Promise<Array<[string, number]>> {
    const out: Array<[string, number]> = []
    for (const w of this.#workers) {
      try {
        out.push([w.config.name, await this.#o.outbox.depth(w.config.name)])
      } catch {}
    }
    return out
  }

  /** Resolves when every worker waits with an empty queue (tests; the demo). */
  async drained (): Promise<void> {
    for (;;) {
      if (this.#abort.signal.aborted) return
      const busy = this.#workers.some((w) => !w.idle)
      const depth = (await this.depths()).reduce((sum, [, d]) => sum + d, 0)
      if (!busy && depth === 0) return
      await new Promise<void>((resolve) => this.#idleWaiters.add(() => resolve()))
    }
  }

  /** Forwards a purge that succeeded at the gateway to every CDN; never rejects. */
  async forward (purge: CdnPurge): Promise<ForwardReport[]> {
    return await Promise.all(this.#workers.map(async (w) => await this.#forwardTo(w, purge)))
  }

  async #forwardTo (w: Worker, purge: CdnPurge): Promise<ForwardReport> {
    const { name } = w.config
    const provider = w.provider.provider
    const plan = w.provider.plan(purge)
    for (let i = 0; i < plan.refused.length; i++) this.#o.onResult?.(provider, 'refused')
    const base = { cdn: name, provider, batches: plan.batches.length, ...(plan.refused.length > 0 ? { refused: plan.refused } : {}) }
    if (plan.batches.length === 0) {
      return plan.refused.length > 0
        ? { ...base, state: 'failed', message: `${provider} cannot do this purge: ${plan.refused.join('; ')}` }
        : { ...base, state: 'done' }
    }
    const jobs: Job[] = plan.batches.map((batch) => ({ id: randomUUID(), batch, attempts: 0 }))
    const firsts = jobs.map((job) => new Promise<{ state: ForwardState, message?: string }>((resolve) => this.#waiters.set(job.id, resolve)))
    try {
      await this.#o.outbox.add(name, jobs)
    } catch (err) {
      for (const job of jobs) this.#waiters.delete(job.id)
      const message = `not queued: ${(err as Error).message}`
      this.#o.logger.warn({ cdn: name, provider, err: (err as Error).message, batches: jobs.length }, 'CDN purge not forwarded: the outbox did not accept it')
      for (let i = 0; i < jobs.length; i++) this.#o.onResult?.(provider, 'failed')
      return { ...base, state: 'failed', message }
    }
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), w.config.timeout + 1000)
      timer.unref()
    })
    const outcomes = await Promise.race([Promise.all(firsts), deadline])
    clearTimeout(timer)
    for (const job of jobs) this.#waiters.delete(job.id)
    if (outcomes === undefined) return { ...base, state: 'queued' }
    const failed = outcomes.find((o) => o.state === 'failed')
    if (failed !== undefined) return { ...base, state: 'failed', ...(failed.message !== undefined ? { message: failed.message } : {}) }
    const queued = outcomes.find((o) => o.state === 'queued')
    if (queued !== undefined) return { ...base, state: 'queued', ...(queued.message !== undefined ? { message: queued.message } : {}) }
    return { ...base, state: 'done' }
  }

  #settle (job: Job, outcome: { state: ForwardState, message?: string }): void {
    const resolve = this.#waiters.get(job.id)
    if (resolve === undefined) return
    this.#waiters.delete(job.id)
    resolve(outcome)
  }

  #setIdle (w: Worker, idle: boolean): void {
    w.idle = idle
    if (!idle) return
    const waiters = [...this.#idleWaiters]
    this.#idleWaiters.clear()
    for (const wake of waiters) wake()
  }

  async #run (w: Worker): Promise<void> {
    const signal = this.#abort.signal
    const outbox = this.#o.outbox
    let lastError = ''
    while (!signal.aborted) {
      let delivery: Delivery | undefined
      try {
        delivery = await outbox.next(w.config.name)
        lastError = ''
      } catch (err) {
        // The outbox store is down: log once per distinct error, then look again later.
        if ((err as Error).message !== lastError) this.#o.logger.warn({ cdn: w.config.name, err: (err as Error).message }, 'CDN outbox unreadable; forwards wait')
        lastError = (err as Error).message
      }
      if (delivery === undefined) {
        this.#setIdle(w, true)
        await outbox.wait(w.config.name, signal)
        w.idle = false
        continue
      }
      await this.#deliver(w, delivery)
    }
    this.#setIdle(w, true)
  }

  async #deliver (w: Worker, delivery: Delivery): Promise<void> {
    const { name } = w.config
    const provider = w.provider.provider
    const signal = this.#abort.signal
    const ack = async (): Promise<void> => {
      try {
        await this.#o.outbox.ack(name, delivery)
      } catch (err) {
        // Delivered again later: every purge is idempotent.
        this.#o.logger.warn({ cdn: name, err: (err as Error).message }, 'could not remove a forwarded batch from the outbox; it will be sent again')
      }
    }
    if (delivery.invalid === true) {
      this.#o.logger.warn({ cdn: name, ref: delivery.ref }, 'CDN outbox entry is not a purge batch; dropped')
      await ack()
      return
    }
    const job = delivery.job
    for (;;) {
      job.attempts++
      const attempt = await this.#attempt(w, job)
      if (attempt.kind === 'ok') {
        this.#o.onResult?.(provider, 'done')
        this.#settle(job, { state: 'done' })
        await ack()
        return
      }
      const last = attempt.kind === 'fail' || job.attempts >= w.config.maxAttempts
      const wait = attempt.kind === 'retry' ? attempt.after ?? backoff(job.attempts, (this.#o.random ?? Math.random)()) : 0
      this.#o.logger.warn({
        cdn: name,
        provider,
        kind: job.batch.kind,
        items: job.batch.items.length,
        attempt: job.attempts,
        err: attempt.message,
        ...(last ? { gaveUp: true } : { retryInMs: wait })
      }, last ? 'CDN purge batch failed' : 'CDN purge batch failed; retrying')
      if (last) {
        this.#o.onResult?.(provider, 'failed')
        this.#settle(job, { state: 'failed', message: attempt.message })
        await ack()
        return
      }
      this.#o.onResult?.(provider, 'retried')
      this.#settle(job, { state: 'queued', message: attempt.message })
      await (this.#o.sleep ?? defaultSleep)(wait, signal).catch(() => undefined)
      if (signal.aborted) {
        try {
          await this.#o.outbox.release(name, delivery)
        } catch (err) {
          this.#o.logger.warn({ cdn: name, err: (err as Error).message }, 'could not hand a CDN purge batch back to the outbox; another instance claims it later')
        }
        return
      }
    }
  }

  async #attempt (w: Worker, job: Job): Promise<Attempt> {
    let request: ApiRequest
    try {
      request = await w.provider.request(job.batch, { now: this.#o.clock.now(), batchId: job.id })
    } catch (err) {
      return { kind: 'fail', message: `could not build the request: ${(err as Error).message}` }
    }
    let response: ApiResponse
    try {
      response = await (this.#o.send ?? defaultSend)(request, w.config.timeout)
    } catch (err) {
      const e = err as Error & { code?: string }
      return { kind: 'retry', message: `network error: ${e.code ?? e.message}`, after: undefined }
    }
    const outcome = w.provider.outcome(response.status, response.body)
    if (response.status === 429 || response.status >= 500) {
      const message = outcome.ok ? `HTTP ${response.status}` : outcome.message
      return { kind: 'retry', message, after: retryAfterMs(response.headers['retry-after'], this.#o.clock.now()) }
    }
    return outcome.ok ? { kind: 'ok' } : { kind: 'fail', message: outcome.message }
  }
}

/** The CDN form of a gateway purge: revalidate is a soft purge downstream (the CDN revalidates against the gateway). */
export function cdnPurgeOf (request: { urls: readonly string[], prefixes: readonly string[], tags: readonly string[], hosts: readonly string[], all: boolean, mode: 'soft' | 'hard' | 'revalidate' }): CdnPurge {
  return { urls: request.urls, prefixes: request.prefixes, tags: request.tags, hosts: request.hosts, all: request.all, soft: request.mode !== 'hard' }
}
