/**
 * The admin listener: health probes (open), and protected endpoints (purge, reload,
 * explain) registered by their own modules. Rate limited per client address; JSON bodies
 * are kept raw as well, for webhook signatures.
 */
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import type { GatewayConfig } from '../config/types.ts'
import { GatewayError } from '../errors.ts'
import { RateLimiter } from './admin-auth.ts'
import { sendError } from './respond.ts'

declare module 'fastify' {
  interface FastifyRequest {
    rawBody: Buffer | undefined
  }
}

export interface AdminAppOptions {
  config: () => GatewayConfig
  /** Requests per second per client address (burst twice that). */
  rateLimit?: number
  now: () => number
}

export function createAdminApp (options: AdminAppOptions): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 1024 * 1024 })
  const perSecond = options.rateLimit ?? 20
  const limiter = new RateLimiter(perSecond, perSecond * 2, options.now)

  app.decorateRequest('rawBody', undefined)
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request: FastifyRequest, body: Buffer, done) => {
    request.rawBody = body
    if (body.length === 0) {
      done(null, undefined)
      return
    }
    try {
      done(null, JSON.parse(body.toString('utf8')))
    } catch {
      done(new GatewayError('CG_ERR_PURGE_INVALID', 'The body is not valid JSON'), undefined)
    }
  })

  app.addHook('onRequest', async (request, reply) => {
    // Probes are never rate limited: an orchestrator must always reach them.
    if (request.url === '/healthz' || request.url === '/readyz') return undefined
    if (!limiter.take(request.ip)) {
      sendError(reply, new GatewayError('CG_ERR_RATE_LIMITED'))
      return reply
    }
    return undefined
  })

  app.setErrorHandler((err, _request, reply) => {
    if (err instanceof GatewayError) {
      sendError(reply, err)
      return
    }
    const status = (err as { statusCode?: number }).statusCode
    if (status === 413) {
      sendError(reply, new GatewayError('CG_ERR_BODY_TOO_LARGE'))
      return
    }
    // A body in a content type no parser takes (the admin API reads JSON only).
    if (status === 415) {
      sendError(reply, new GatewayError('CG_ERR_UNSUPPORTED_MEDIA_TYPE'))
      return
    }
    if (status !== undefined && status < 500) {
      sendError(reply, new GatewayError('CG_ERR_BAD_REQUEST', (err as Error).message))
      return
    }
    sendError(reply, new GatewayError('CG_ERR_INTERNAL'))
  })

  app.setNotFoundHandler((request, reply) => {
    sendError(reply, new GatewayError('CG_ERR_NO_ROUTE', `No admin endpoint ${request.method} ${request.url.split('?')[0] ?? ''}`))
  })

  app.get('/healthz', async () => ({ status: 'ok' }))
  return app
}
