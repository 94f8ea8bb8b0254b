/**
 * Admin authentication: `Authorization: Bearer <token>` compared in constant time, or an
 * HMAC-SHA256 signature of the raw body (the scheme CMS webhooks use) in
 * `X-Cachegate-Signature: sha256=<hex>`. With no token configured the protected endpoints
 * are never open: they answer 503 saying how to set one. Failed attempts never echo secrets.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { AdminConfig } from '../config/types.ts'
import { GatewayError } from '../errors.ts'
import { sendError } from './respond.ts'
import { BoundedMap } from '../bounded-map.ts'

export const SIGNATURE_HEADER = 'x-cachegate-signature'

/** Constant-time comparison that does not leak the length either (both sides hashed first). */
export function safeEqual (a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest()
  const hb = createHash('sha256').update(b).digest()
  return timingSafeEqual(ha, hb)
}

export function sign (secret: string, body: Buffer | string): string {
  return 'sha256=' + createHmac('sha256', secret).update(body).digest('hex')
}

export type AuthResult = { ok: true, via: 'token' | 'signature' } | { ok: false, error: GatewayError }

/** Decides whether an admin request is authorized. `rawBody` is needed for signatures. */
export function authorize (admin: AdminConfig, headers: FastifyRequest['headers'], rawBody: Buffer | undefined): AuthResult {
  const signature = headers[SIGNATURE_HEADER]
  if (typeof signature === 'string' && admin.webhookSecret !== undefined) {
    if (rawBody !== undefined && safeEqual(sign(admin.webhookSecret, rawBody), signature.trim())) return { ok: true, via: 'signature' }
    return { ok: false, error: new GatewayError('CG_ERR_ADMIN_FORBIDDEN', 'The webhook signature does not match the body') }
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

/** preHandler for protected admin routes. */
export function requireAdmin (admin: () => AdminConfig) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const raw = (request as FastifyRequest & { rawBody?: Buffer }).rawBody
    const result = authorize(admin(), request.headers, raw)
    if (!result.ok) {
      request.log.warn({ code: result.error.code, ip: request.ip }, 'admin request refused')
      sendError(reply, result.error)
      return reply
    }
    return undefined
  }
}
