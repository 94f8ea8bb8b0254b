/**
 * The public listener's request path: route match, URL normalization, then GET/HEAD to the
 * read-through lifecycle and every other method through to the origin (reply-from), with
 * RFC 9111 §4.4 invalidation when an unsafe method succeeds.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import replyFrom from '@fastify/reply-from'
import { METHODS, type IncomingHttpHeaders, type IncomingMessage } from 'node:http'
import { Transform, type Readable, type TransformCallback } from 'node:stream'
import { formatCacheStatus, type CacheStatus } from '../cache/cache-status.ts'
import { single } from '../cache/headers.ts'
import { invalidationTargets, isUnsafe } from '../cache/invalidate.ts'
import type { CacheKey } from '../cache/key.ts'
import type { Clock } from '../clock.ts'
import { hostFields, ignoreFor, requestScheme, resolveRequest } from './request-fields.ts'
import type { RouteMatcher } from '../config/routes.ts'
import type { GatewayConfig, RouteConfig } from '../config/types.ts'
import { GatewayError } from '../errors.ts'
import type { LifecycleEvent, ReadThrough } from '../lifecycle/read-through.ts'
import type { OriginClient } from '../origin/client.ts'
import { originError } from '../origin/client.ts'
import type { OutcomeKind, RequestOutcome } from '../observability/events.ts'
import { downstreamHeaders, earlyHintsRelay, sendAnswer, sendError, VIA } from './respond.ts'
import { prefetched } from './fast-hit.ts'
import { forwardHeaders, forwardingPolicy } from './forwarding.ts'

export interface ProxyDeps {
  config: () => GatewayConfig
  routes: () => RouteMatcher
  readThrough: ReadThrough
  origin: OriginClient
  /** Times a POST's origin request (RFC 9111 §4.2.3), for a response kept as its URL's GET response. */
  clock: Clock
  /** Invalidates stored URLs (RFC 9111 §4.4) after a successful unsafe method. */
  invalidate: (keys: CacheKey[]) => Promise<void>
  onOutcome: (o: RequestOutcome) => void
  onError: (err: unknown, context: string) => void
  /** Handler for the HTTP PURGE method (http/admin-purge.ts); it checks purgeMethod itself. */
  purgeMethod?: (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply>
  /** Origin requests made by pass-through (metrics); the read-through reports its own. */
  onEvent?: (e: LifecycleEvent) => void
  /** An origin failure answered to a client (502/504): logged with the origin and the cause's code. */
  onOriginError?: (e: { route: RouteConfig, method: string, error: GatewayError }) => void
}

interface RequestState {
  route: RouteConfig | undefined
  url: string
  outcome: OutcomeKind
  cacheStatus: CacheStatus | undefined
  collapsed: boolean
  originStatus: number | undefined
}

declare module 'fastify' {
  interface FastifyRequest {
    cg: RequestState | undefined
  }
}

/**
 * Methods the HTTP parser accepts that are not passed through: TRACE would reflect the
 * client's credentials (cross-site tracing); CONNECT never reaches a route (gateway.ts
 * answers it); PURGE has its own handler. Node's parser refuses methods it does not know
 * (gateway.ts answers those 405 too), so "any token" means any method in http.METHODS.
 */
const NOT_FORWARDED = new Set(['TRACE', 'CONNECT', 'PURGE'])
export const FORWARDED_METHODS: readonly string[] = METHODS.filter((m) => !NOT_FORWARDED.has(m))

/** Counts request body bytes for pass-through and fails past the limit (chunked bodies too). */
class BodyLimit extends Transform {
  #seen = 0
  readonly #limit: number
  constructor (limit: number) {
    super()
    this.#limit = limit
  }

  override _transform (chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.#seen += chunk.length
    if (this.#seen > this.#limit) {
      done(new GatewayError('CG_ERR_BODY_TOO_LARGE'))
      return
    }
    done(null, chunk)
  }
}

/**
 * The client's request body as it goes to the origin. A client that hangs up, or whose body
 * pauses longer than `stallMs`, fails this stream, and a failed request body makes undici
 * abort the origin request and close its connection: otherwise an upload announcing more
 * bytes than it sends holds one of the route's maxConnections until the origin's own timeout.
 * A stall leaves the client's socket open, so it can still be told 408.
 */
function clientBody (payload: IncomingMessage, limit: number, stallMs: number): BodyLimit {
  const body = new BodyLimit(limit)
  const fail = (err: Error): void => {
    clearTimeout(timer)
    payload.unpipe(body)
    if (!body.destroyed) body.destroy(err)
  }
  const timer = setTimeout(() => {
    payload.pause()
    fail(new GatewayError('CG_ERR_REQUEST_TIMEOUT'))
  }, stallMs)
  timer.unref()
  payload.on('data', () => timer.refresh())
  payload.on('end', () => clearTimeout(timer))
  payload.on('error', fail)
  payload.on('close', () => {
    if (!payload.complete) fail(new Error('the client closed the connection before its request body was complete'))
  })
  body.on('error', () => clearTimeout(timer))
  payload.pipe(body)
  return body
}

const ORIGIN_ERRORS: ReadonlySet<string> = new Set(['CG_ERR_ORIGIN_UNREACHABLE', 'CG_ERR_ORIGIN_TIMEOUT', 'CG_ERR_ORIGIN_BAD_RESPONSE'])

/** The client's copy of an origin error: it names the route, never the origin's address (logged instead). */
function routeError (route: RouteConfig, error: GatewayError): GatewayError {
  return new GatewayError(error.code, `${error.message} (route "${route.name}")`, { cause: error.cause ?? error })
}

export async function proxyPlugin (app: FastifyInstance, deps: ProxyDeps): Promise<void> {
  await app.register(replyFrom, { undici: deps.origin.dispatcher, disableRequestLogging: true })

  app.decorateRequest('cg', undefined)
  // Bodies stream through to the origin untouched; the size limit is enforced as they flow.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (request, payload, done) => {
    const { maxBodyBytes: limit, requestBodyTimeout } = deps.config().limits
    const declared = Number(request.headers['content-length'])
    if (Number.isFinite(declared) && declared > limit) {
      done(new GatewayError('CG_ERR_BODY_TOO_LARGE'), undefined)
      return
    }
    done(null, clientBody(payload, limit, requestBodyTimeout))
  })

  app.addHook('onResponse', async (request, reply) => {
    const s = request.cg
    // The Cache-Status the client got: error replies add their detail, pass-through its fwd-status.
    const sent = reply.getHeader('cache-status')
    deps.onOutcome({
      route: s?.route?.name,
      method: request.method,
      url: s?.url ?? request.url.split('?')[0] ?? '',
      outcome: s?.outcome ?? (reply.statusCode >= 500 ? 'error' : 'pass'),
      status: reply.statusCode,
      cacheStatus: typeof sent === 'string' ? sent : s?.cacheStatus !== undefined ? formatCacheStatus(s.cacheStatus) : undefined,
      originStatus: s?.originStatus,
      collapsed: s?.collapsed ?? false,
      durationMs: reply.elapsedTime
    })
  })

  app.setErrorHandler((err, request, reply) => {
    const gatewayError = err instanceof GatewayError
      ? err
      : (err as { statusCode?: number }).statusCode === 413
          ? new GatewayError('CG_ERR_BODY_TOO_LARGE')
          : (err as { statusCode?: number }).statusCode !== undefined && ((err as { statusCode: number }).statusCode < 500)
              ? new GatewayError('CG_ERR_BAD_REQUEST', (err as Error).message)
              // A passed-through body that failed before anything was flushed: the origin's fault.
              : request.cg?.originStatus !== undefined ? originError(err) : undefined
    if (gatewayError === undefined) deps.onError(err, 'request')
    if (request.cg !== undefined) request.cg.outcome = 'error'
    sendError(reply, gatewayError ?? new GatewayError('CG_ERR_INTERNAL'))
  })

  const handler = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    // An async handler returns the reply: fastify then knows a streamed send is in progress.
    const config = deps.config()
    const raw = request.raw.url ?? '/'
    if (raw.length > config.limits.maxUrlLength) {
      sendError(reply, new GatewayError('CG_ERR_URI_TOO_LONG'), { fwd: 'bypass' })
      return reply
    }
    const host = single(request.headers.host) ?? ''
    if (host === '' || hostFields(request.raw.rawHeaders) > 1) {
      // RFC 9112 §3.2: no Host (HTTP/1.1, or 1.0 without one) leaves no URL to key; several
      // (Node keeps the first) could name another resource to whatever sits in front.
      request.cg = { route: undefined, url: raw.split('?')[0] ?? '', outcome: 'error', cacheStatus: undefined, collapsed: false, originStatus: undefined }
      sendError(reply, new GatewayError('CG_ERR_BAD_REQUEST', host === '' ? 'The request has no Host header' : 'The request has more than one Host header'), { fwd: 'bypass' })
      return reply
    }
    const scheme = requestScheme(request.raw.socket)
    const resolved = resolveRequest(deps.routes(), { scheme, host, target: raw })
    const state: RequestState = { route: resolved.ok ? resolved.route : undefined, url: raw.split('?')[0] ?? '', outcome: 'pass', cacheStatus: undefined, collapsed: false, originStatus: undefined }
    request.cg = state
    if (!resolved.ok) {
      state.outcome = 'error'
      const error = resolved.problem === 'no-route'
        ? new GatewayError('CG_ERR_NO_ROUTE', `No route serves host "${host.replace(/[^\x20-\x7e]/g, '?')}" and this path`)
        : new GatewayError('CG_ERR_BAD_REQUEST', `The request URL is malformed: ${resolved.reason}`)
      sendError(reply, error, { fwd: 'bypass' })
      return reply
    }
    const { route, url: normalized } = resolved
    state.url = normalized.key
    // One forwarded set for every origin request made for this request, and for its variant.
    // request.ip is the peer's address: fastify's trustProxy is off (gateway.ts).
    const forward = forwardHeaders({ headers: request.headers, route, policy: forwardingPolicy(config), peer: request.ip, scheme, host })
    // Expect is this hop's: Node answered 100 Continue before this handler ran (RFC 9110
    // §10.1.1), and undici refuses to send the field, which made every such upload a 502.
    delete forward.expect
    const method = request.method

    if ((method === 'GET' || method === 'HEAD') && route.enabled) {
      const answer = await deps.readThrough.handle({ route, key: normalized.key, path: normalized.pathAndQuery, method, headers: request.headers, forward, lookup: prefetched(request.raw, normalized.key), interim: earlyHintsRelay(request.raw, reply.raw) })
      state.outcome = answer.outcome
      state.cacheStatus = answer.cacheStatus
      state.collapsed = answer.cacheStatus.collapsed === true
      state.originStatus = answer.cacheStatus.fwdStatus
      if (answer.kind === 'error' && ORIGIN_ERRORS.has(answer.error.code)) {
        const error = routeError(route, answer.error)
        deps.onOriginError?.({ route, method, error })
        sendAnswer(reply, method, request.headers, route, { ...answer, error })
        return reply
      }
      sendAnswer(reply, method, request.headers, route, answer)
      return reply
    }

    // Pass-through: other methods, and routes with caching disabled.
    const passStatus: CacheStatus = route.enabled ? { fwd: 'method' } : { fwd: 'bypass', detail: 'route-disabled' }
    state.cacheStatus = passStatus
    const target = route.origin + normalized.pathAndQuery
    const requestTime = deps.clock.now()
    return await reply.from(target, {
      // No retries here: reply-from would otherwise retry a GET answered 503 up to ten times.
      retryDelay: () => null,
      rewriteRequestHeaders: (_req, headers) => ({ ...forward, host: headers.host, ...(headers['content-length'] !== undefined ? { 'content-length': headers['content-length'] } : {}) }),
      // reply-from rewrites the headers before it sets the status: fwd-status is added in onResponse.
      rewriteHeaders: (headers) => ({ ...downstreamHeaders(headers, route), via: VIA }),
      onResponse: (_req, rep, raw): void => {
        // reply-from hands undici's response: status, headers and the body stream.
        const res = raw as unknown as { statusCode: number, headers: IncomingHttpHeaders, stream: Readable }
        if (rep.sent) {
          // reply-from already answered 502 (a status it could not relay): drop the origin's body.
          res.stream.destroy()
          return
        }
        const responseTime = deps.clock.now()
        state.originStatus = res.statusCode
        deps.onEvent?.({ type: 'origin', route: route.name, status: res.statusCode, seconds: rep.elapsedTime / 1000 })
        const status = res.statusCode
        rep.header('cache-status', formatCacheStatus({ ...passStatus, fwdStatus: status }))
        if (isUnsafe(method) && status >= 200 && status < 400) {
          const keys = invalidationTargets(method, status, normalized.key, res.headers, ignoreFor(route))
          // After the invalidation, never before: a POST's response may become the URL's GET response.
          const send = (): void => {
            if (method !== 'POST') {
              rep.send(res.stream)
              return
            }
            const headers = res.headers as Record<string, string | string[]>
            const kept = deps.readThrough.adoptPost({ route, key: normalized.key, headers: request.headers, forward }, { res: { status, headers, body: res.stream }, requestTime, responseTime })
            rep.header('cache-status', formatCacheStatus({ ...passStatus, fwdStatus: status, ...kept.cacheStatus }))
            rep.send(kept.body)
          }
          // §4.4: invalidate before the client sees the answer, so its next read is not stale.
          // When the invalidation failed, nothing is stored either (the old entries may remain).
          deps.invalidate(keys).then(send, (err: unknown) => {
            deps.onError(err, 'invalidate')
            rep.send(res.stream)
          }).catch((err: unknown) => {
            // Nothing may escape as an unhandled rejection: that would end the process.
            deps.onError(err, 'request')
            res.stream.destroy()
            if (!rep.sent) sendError(rep as FastifyReply, new GatewayError('CG_ERR_INTERNAL'), passStatus)
          })
          return
        }
        rep.send(res.stream)
      },
      onError: (rep, { error }) => {
        state.outcome = 'error'
        deps.onEvent?.({ type: 'origin', route: route.name, status: 'error', seconds: (rep as FastifyReply).elapsedTime / 1000 })
        const code = (error as { code?: string }).code
        const mapped = code === 'FST_REPLY_FROM_GATEWAY_TIMEOUT' || code === 'FST_REPLY_FROM_CONNECT_TIMEOUT' || code === 'FST_REPLY_FROM_HEADERS_TIMEOUT'
          ? new GatewayError('CG_ERR_ORIGIN_TIMEOUT')
          : code === 'FST_REPLY_FROM_BAD_GATEWAY' ? new GatewayError('CG_ERR_ORIGIN_BAD_RESPONSE') : originError((error as { cause?: unknown }).cause ?? error)
        if (ORIGIN_ERRORS.has(mapped.code)) {
          const named = routeError(route, mapped.cause === undefined ? new GatewayError(mapped.code, mapped.message, { cause: error }) : mapped)
          deps.onOriginError?.({ route, method, error: named })
          sendError(rep as FastifyReply, named, passStatus)
          return
        }
        sendError(rep as FastifyReply, mapped, passStatus)
      }
    })
  }

  // Fastify 5 routes only the methods it knows: the others the HTTP parser accepts (M-SEARCH,
  // PROPFIND, LOCK, ...) are added, so they pass through like any unsafe method (RFC 9110 §9.1).
  for (const method of FORWARDED_METHODS) {
    if (!app.supportedMethods.includes(method)) app.addHttpMethod(method, { hasBody: true })
  }
  app.route({ method: [...FORWARDED_METHODS], url: '/*', handler })
  app.route({ method: [...FORWARDED_METHODS], url: '/', handler })
  // Every path is routed, so only a method no route takes (TRACE, PURGE when disabled) ends here.
  app.setNotFoundHandler((request, reply) => {
    request.cg = { route: undefined, url: (request.raw.url ?? '/').split('?')[0] ?? '', outcome: 'error', cacheStatus: undefined, collapsed: false, originStatus: undefined }
    reply.header('allow', FORWARDED_METHODS.join(', '))
    sendError(reply, new GatewayError('CG_ERR_METHOD_NOT_ALLOWED', `The ${request.method} method is not supported`), { fwd: 'bypass' })
  })
  if (deps.purgeMethod !== undefined) {
    // Fastify 5 routes only the methods it knows; PURGE (Varnish, Squid) must be added.
    if (!app.supportedMethods.includes('PURGE')) app.addHttpMethod('PURGE')
    app.route({ method: 'PURGE', url: '/*', handler: deps.purgeMethod })
    app.route({ method: 'PURGE', url: '/', handler: deps.purgeMethod })
  }
}
