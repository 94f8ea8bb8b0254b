/**
 * Admin authentication: `Authorization: Bearer <token>` compared in constant time, or a
 * signed purge webhook: `X-Cachegate-Timestamp: <unix seconds>` and
 * `X-Cachegate-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">` under
 * admin.webhookSecret (the scheme Stripe and Slack use). A timestamp further than
 * admin.webhookTolerance from now is refused, and so is a signature already used within that
 * window (a ReplayGuard: per process, or shared through Redis with SET NX PX), so a captured
 * request cannot be replayed. With no token configured the protected endpoints are never
 * open: they answer 503 saying how to set one. Failed attempts never echo secrets.
 */
import { createHash, createHmac } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { systemClock } from '../clock.ts'
import type { AdminConfig } from '../config/types.ts'
import { GatewayError } from '../errors.ts'
import { safeEqual } from '../invalidation/webhooks/verify.ts'
import { sendError } from './respond.ts'
import { BoundedMap } from '../bounded-map.ts'

export const SIGNATURE_HEADER = 'x-cachegate-signature'
export const TIMESTAMP_HEADER = 'x-cachegate-timestamp'

/** The signature a purge webhook sends: HMAC-SHA256 of `<timestamp>.<raw body>`, as `sha256=<hex>`. */
export function signPurge (secret: string, timestamp: number | string, body: Buffer | string): string {
  return 'sha256=' + createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex')
}

/**
 * Remembers signatures already used. `claim` resolves true the first time an id is seen
 * within `ttlMs`, false after; it never forgets an id before its window ends unless its
 * bound is reached (then the oldest go first: they are the nearest to expiring anyway).
 */
export interface ReplayGuard {
  claim(id: string, ttlMs: number, now: number): Promise<boolean>
}

/** This process's memory of used signatures, bounded (src/bounded-map.ts). */
export class MemoryReplayGuard implements ReplayGuard {
  readonly #seen = new BoundedMap<string, number>({ maxEntries: 100_000, maxBytes: 16 * 1024 * 1024 })

  async claim (id: string, ttlMs: number, now: number): Promise<boolean> {
    const until = this.#seen.peek(id)
    if (until !== undefined && until > now) return false
    this.#seen.set(id, now + ttlMs)
    return true
  }
}

export type AuthResult = { ok: true, via: 'token' } | { ok: true, via: 'signature', signature: string } | { ok: false, error: GatewayError }

/**
 * Decides whether an admin request is authorized. `rawBody` is needed for signatures, `now`
 * (ms) for their timestamp. A signature that passes still has to be claimed (requireAdmin).
 */
export function authorize (admin: AdminConfig, headers: FastifyRequest['headers'], rawBody: Buffer | undefined, now: number): AuthResult {
  const signature = headers[SIGNATURE_HEADER]
  if (typeof signature === 'string' && admin.webhookSecret !== undefined) {
    const timestamp = headers[TIMESTAMP_HEADER]
    if (typeof timestamp !== 'string' || !/^\d{1,12}$/.test(timestamp.trim())) {
      return { ok: false, error: new GatewayError('CG_ERR_ADMIN_FORBIDDEN', 'A signed purge needs X-Cachegate-Timestamp (unix seconds), and the signature covers "<timestamp>.<body>"') }
    }
    const at = Number(timestamp.trim())
    if (Math.abs(now - at * 1000) > admin.webhookTolerance) {
      return { ok: false, error: new GatewayError('CG_ERR_ADMIN_FORBIDDEN', `The webhook timestamp is more than ${Math.round(admin.webhookTolerance / 1000)} s away from now: sign each request when it is sent`) }
    }
    if (rawBody !== undefined && safeEqual(signPurge(admin.webhookSecret, timestamp.trim(), rawBody), signature.trim())) return { ok: true, via: 'signature', signature: signature.trim() }
    return { ok: false, error: new GatewayError('CG_ERR_ADMIN_FORBIDDEN', 'The webhook signature does not match "<timestamp>.<body>"') }
  }
  if (admin.token === undefined) return { ok: false, error: new GatewayError('CG_ERR_ADMIN_DISABLED') }
  const header = headers.authorization
  if (header === undefined || header === '') return { ok: false, error: new GatewayError('CG_ERR_ADMIN_UNAUTHORIZED') }
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header)
  if (m === null) return { ok: false, error: new GatewayError('CG_ERR_ADMIN_UNAUTHORIZED', 'Authorization must be "Bearer <token>"') }
  if (!safeEqual(m[1] as string, admin.token)) return { ok: false, error: new GatewayError('CG_ERR_ADMIN_FORBIDDEN') }
  return { ok: true, via: 'token' }
}

/**
 * A small token bucket per client address for the admin listener, so a leaked or guessed
 * endpoint cannot be hammered (and a wrong-token loop is slowed down).
 */
export class RateLimiter {
  readonly #buckets = new BoundedMap<string, { tokens: number, at: number }>({ maxEntries: 10_000, maxBytes: 2 * 1024 * 1024 })
  readonly #rate: number
  readonly #burst: number
  readonly #now: () => number

  constructor (perSecond: number, burst: number, now: () => number) {
    this.#rate = perSecond
    this.#burst = burst
    this.#now = now
  }

  take (client: string): boolean {
    const now = this.#now()
    const b = this.#buckets.get(client) ?? { tokens: this.#burst, at: now }
    b.tokens = Math.min(this.#burst, b.tokens + ((now - b.at) / 1000) * this.#rate)
    b.at = now
    if (b.tokens < 1) {
      this.#buckets.set(client, b)
      return false
    }
    b.tokens -= 1
    this.#buckets.set(client, b)
    return true
  }
}

export interface AdminAuthOptions {
  /** ms since the epoch (the gateway's clock). */
  now?: () => number
  /** Where used signatures are remembered (shared through Redis with several instances). */
  replay?: ReplayGuard
}

/** preHandler for protected admin routes. */
export function requireAdmin (admin: () => AdminConfig, options: AdminAuthOptions = {}) {
  const now = options.now ?? (() => systemClock.now())
  const replay = options.replay ?? new MemoryReplayGuard()
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const raw = (request as FastifyRequest & { rawBody?: Buffer }).rawBody
    const config = admin()
    const at = now()
    let result = authorize(config, request.headers, raw, at)
    if (result.ok && result.via === 'signature') {
      // Hashed: the id is the same length whatever was sent, and no signature is kept as is.
      const id = createHash('sha256').update(result.signature).digest('base64url')
      // Twice the tolerance: a timestamp may be that far in the future as well as the past.
      if (!(await replay.claim(id, 2 * config.webhookTolerance, at))) {
        result = { ok: false, error: new GatewayError('CG_ERR_ADMIN_FORBIDDEN', 'This webhook signature has already been used: sign each request afresh') }
      }
    }
    if (!result.ok) {
      request.log.warn({ code: result.error.code, ip: request.ip }, 'admin request refused')
      sendError(reply, result.error)
      return reply
    }
    return undefined
  }
}
