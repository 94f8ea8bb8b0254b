/**
 * Purge over HTTP: `POST /purge` on the admin listener (bearer token or signed webhook), and
 * the `PURGE` method on the public listener (as in Varnish and Squid), off unless
 * `purgeMethod.enabled`, and only from the `purgeMethod.allow` addresses.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { single } from '../cache/headers.ts'
import { addressMatcher } from '../config/address-range.ts'
import type { RouteMatcher } from '../config/routes.ts'
import type { AdminConfig, GatewayConfig } from '../config/types.ts'
import { GatewayError } from '../errors.ts'
import { parsePurgeRequest, type Purger } from '../invalidation/purge.ts'
import { requestScheme, resolveRequest } from './request-fields.ts'
import { requireAdmin, SIGNATURE_HEADER, type AdminAuthOptions } from './admin-auth.ts'
import { sendError } from './respond.ts'

export interface PurgeRoutesOptions {
  admin: () => AdminConfig
  /** The clock and the replay guard for signed purges (admin-auth.ts). */
  auth?: AdminAuthOptions
  purger: Purger
  /** Reports a purge that failed half way (a store error); the client gets a 500 and may retry. */
  onError: (err: unknown) => void
}

/** Registers `POST /purge` on the admin app. */
export function registerPurgeRoutes (app: FastifyInstance, options: PurgeRoutesOptions): void {
  const auth = requireAdmin(options.admin, options.auth)
  app.post('/purge', {
    // A bearer token is checked before the body is parsed, so an unauthenticated caller
    // learns nothing about its body. A signature needs the raw body: checked in preHandler.
    onRequest: async (request, reply) => {
      const signed = typeof request.headers[SIGNATURE_HEADER] === 'string' && options.admin().webhookSecret !== undefined
      if (!signed) return await auth(request, reply)
      return undefined
    },
    preHandler: auth
  }, async (request, reply) => {
    const parsed = parsePurgeRequest(request.body)
    if (!parsed.ok) throw new GatewayError('CG_ERR_PURGE_INVALID', parsed.message)
    let result
    try {
      result = await options.purger.purge(parsed.value)
    } catch (err) {
      options.onError(err)
      throw new GatewayError('CG_ERR_INTERNAL', 'The purge failed part way (the store did not answer); purges are idempotent: retry it', { cause: err })
    }
    reply.header('cache-control', 'no-store')
    return result
  })
  // Other methods on /purge say which one works instead of "no such endpoint" (HEAD follows GET).
  app.route({
    method: ['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'],
    url: '/purge',
    handler: async (_request, reply) => {
      reply.header('allow', 'POST')
      sendError(reply, new GatewayError('CG_ERR_METHOD_NOT_ALLOWED', 'Purge with POST /purge and a JSON body such as {"urls": ["https://host/path"]}'))
      return reply
    }
  })
}

export interface PurgeMethodOptions {
  config: () => GatewayConfig
  routes: () => RouteMatcher
  purger: Purger
  onError: (err: unknown) => void
}

export function addressAllowed (addresses: readonly string[], ip: string): boolean {
  return addressMatcher(addresses)(ip)
}

/**
 * The public listener's PURGE handler: purges the request's own cache key (hard), every
 * variant of it, normalized exactly as a GET for the same target would be keyed.
 */
export function purgeMethodHandler (options: PurgeMethodOptions) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    const config = options.config()
    if (!config.purgeMethod.enabled) {
      sendError(reply, new GatewayError('CG_ERR_METHOD_NOT_ALLOWED', 'The PURGE method is disabled: set purgeMethod.enabled in routes.yaml, or use POST /purge on the admin listener'), { fwd: 'bypass' })
      return reply
    }
    if (!addressAllowed(config.purgeMethod.allow, request.ip)) {
      sendError(reply, new GatewayError('CG_ERR_ADMIN_FORBIDDEN', 'PURGE is not allowed from this address (purgeMethod.allow)'), { fwd: 'bypass' })
      return reply
    }
    const raw = request.raw.url ?? '/'
    if (raw.length > config.limits.maxUrlLength) {
      sendError(reply, new GatewayError('CG_ERR_URI_TOO_LONG'), { fwd: 'bypass' })
      return reply
    }
    const host = single(request.headers.host) ?? ''
    const resolved = resolveRequest(options.routes(), { scheme: requestScheme(request.raw.socket), host, target: raw })
    if (!resolved.ok) {
      sendError(reply, resolved.problem === 'no-route'
        ? new GatewayError('CG_ERR_NO_ROUTE')
        : new GatewayError('CG_ERR_BAD_REQUEST', `The request URL is malformed: ${resolved.reason}`), { fwd: 'bypass' })
      return reply
    }
    const normalized = resolved.url
    try {
      const result = await options.purger.purgeKeys([normalized.key], 'hard', 'method')
      reply.code(200).header('content-type', 'application/json; charset=utf-8').header('cache-control', 'no-store').send(JSON.stringify(result))
      return reply
    } catch (err) {
      options.onError(err)
      sendError(reply, new GatewayError('CG_ERR_INTERNAL', 'The purge failed (the store did not answer); retry it'), { fwd: 'bypass' })
      return reply
    }
  }
}
