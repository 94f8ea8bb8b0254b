/**
 * The gateway's own origin fetches: one undici Pool per route, with separate connect,
 * headers and body timeouts (body: the longest pause between chunks), an optional deadline
 * for the whole response (timeouts.total), and a cap on connections shared with
 * pass-through. undici checks its headers and body timers about once a second, so those
 * fire up to ~1 s late; the total deadline is exact. Errors are mapped to the catalogue
 * (502 unreachable or malformed, 504 timeout). Idempotent requests are retried once on a
 * connection error that happened before any response byte arrived, never after.
 */
import type { Readable } from 'node:stream'
import { Dispatcher, Pool, errors as undiciErrors } from 'undici'
import type { RouteConfig } from '../config/types.ts'
import { GatewayError } from '../errors.ts'
import { dropUnsolicitedContinue } from './interim-filter.ts'

export interface OriginRequest {
  method: string
  /** Normalized path and query. */
  path: string
  headers: Record<string, string | string[]>
  signal?: AbortSignal
  /** Called with each interim (1xx) response the origin sends before the final one. */
  onInfo?: ((status: number, headers: Record<string, string | string[]>) => void) | undefined
}

export interface OriginResponse {
  status: number
  headers: Record<string, string | string[]>
  body: Readable
}

const RETRYABLE = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'UND_ERR_SOCKET', 'ECONNABORTED'])

/**
 * Every origin connection is made here: its reads drop unsolicited 100 (Continue) responses
 * (interim-filter.ts), which needs one request at a time on a connection (pipelining 1).
 */
function originPool (origin: string, options: { connections?: number, connectTimeout?: number, headersTimeout?: number, bodyTimeout?: number } = {}): Pool {
  const { connectTimeout, ...rest } = options
  return new Pool(origin, {
    ...rest,
    pipelining: 1,
    connect: dropUnsolicitedContinue(connectTimeout !== undefined ? { timeout: connectTimeout } : {}),
    keepAliveTimeout: 4_000
  })
}

/** Adapts a caller's interim-response callback to undici's onInfo; a throwing callback cannot break the fetch. */
function interimRelay (onInfo: (status: number, headers: Record<string, string | string[]>) => void): NonNullable<Dispatcher.RequestOptions['onInfo']> {
  return ({ statusCode, headers }) => {
    try {
      onInfo(statusCode, headers)
    } catch {
      // The callback only relays a hint; the final response matters, not the hint.
    }
  }
}

/**
 * The code of the first error in a cause chain that has one of its own (ECONNREFUSED,
 * ENOTFOUND, ETIMEDOUT, UND_ERR_CONNECT_TIMEOUT, CERT_HAS_EXPIRED, ERR_TLS_CERT_ALTNAME_INVALID,
 * ...), for the log line of an origin failure; the catalogue's and reply-from's codes are skipped.
 */
export function causeCode (err: unknown): string | undefined {
  let current: unknown = err
  for (let depth = 0; depth < 8 && current !== null && typeof current === 'object'; depth++) {
    const code = (current as { code?: unknown }).code
    if (typeof code === 'string' && !code.startsWith('CG_ERR_') && !code.startsWith('FST_')) return code
    const name = (current as { name?: unknown }).name
    if (name === 'TimeoutError') return 'ETIMEDOUT'
    current = (current as { cause?: unknown }).cause
  }
  return undefined
}

/** Maps an undici or socket error to the gateway's error catalogue. */
export function originError (err: unknown): GatewayError {
  if (err instanceof GatewayError) return err
  const raw = (err as { code?: unknown } | null)?.code
  // DOMExceptions (an aborted signal) carry numeric codes.
  const code = typeof raw === 'string' ? raw : ''
  // The route's whole-response deadline (timeouts.total) aborts with a TimeoutError.
  if ((err as { name?: unknown } | null)?.name === 'TimeoutError') return new GatewayError('CG_ERR_ORIGIN_TIMEOUT', undefined, { cause: err })
  if (err instanceof undiciErrors.ConnectTimeoutError || err instanceof undiciErrors.HeadersTimeoutError ||
    err instanceof undiciErrors.BodyTimeoutError || code === 'UND_ERR_CONNECT_TIMEOUT' ||
    code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return new GatewayError('CG_ERR_ORIGIN_TIMEOUT', undefined, { cause: err })
  }
  // undici 7's HTTPParserError (bad status line, header or chunk) carries no code.
  if (err instanceof undiciErrors.HTTPParserError || code.startsWith('HPE_') || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' || code === 'UND_ERR_INFO') {
    return new GatewayError('CG_ERR_ORIGIN_BAD_RESPONSE', undefined, { cause: err })
  }
  return new GatewayError('CG_ERR_ORIGIN_UNREACHABLE', undefined, { cause: err })
}

/**
 * The dispatcher reply-from uses for pass-through: each request goes to the pool of the route
 * serving its origin, so pass-through and cached fetches share one connection cap. Unlike an
 * undici Agent it never closes those pools: an Agent closes a dispatcher once the connections
 * it counted are gone, which closed the route's shared pool a keep-alive timeout after the
 * first pass-through request and left every later fetch of the route failing. The pools
 * belong to the OriginClient, which closes them; closing this closes nothing.
 */
class PoolRouter extends Dispatcher {
  readonly #pick: (origin: string) => Pool

  constructor (pick: (origin: string) => Pool) {
    super()
    this.#pick = pick
  }

  override dispatch (options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    return this.#pick(String(options.origin)).dispatch(options, handler)
  }

  override close (callback: () => void): void
  override close (): Promise<void>
  override close (callback?: () => void): Promise<void> | undefined {
    if (callback === undefined) return Promise.resolve()
    queueMicrotask(callback)
    return undefined
  }

  override destroy (err: Error | null, callback: () => void): void
  override destroy (callback: () => void): void
  override destroy (err: Error | null): Promise<void>
  override destroy (): Promise<void>
  override destroy (a?: Error | null | (() => void), b?: () => void): Promise<void> | undefined {
    const callback = typeof a === 'function' ? a : b
    if (callback === undefined) return this.close()
    this.close(callback)
    return undefined
  }
}

export class OriginClient {
  readonly #pools = new Map<string, Pool>()
  /** Pools for origins no route names (not expected: pass-through targets a route's origin). */
  readonly #others = new Map<string, Pool>()
  /** Dispatcher for pass-through (reply-from): routes each origin to the same pools. */
  readonly dispatcher: Dispatcher

  constructor (routes: readonly RouteConfig[]) {
    for (const route of routes) this.#pool(route)
    this.dispatcher = new PoolRouter((origin) => {
      const existing = this.#byOrigin(origin)
      if (existing !== undefined) return existing
      let other = this.#others.get(origin)
      if (other === undefined) {
        other = originPool(origin)
        this.#others.set(origin, other)
      }
      return other
    })
  }

  /** Makes pools for routes added by a reload (existing pools are kept). */
  addRoutes (routes: readonly RouteConfig[]): void {
    for (const route of routes) this.#pool(route)
  }

  #byOrigin (origin: string): Pool | undefined {
    const o = new URL(origin).origin
    for (const [key, pool] of this.#pools) if (key.endsWith(`|${o}`)) return pool
    return undefined
  }

  #pool (route: RouteConfig): Pool {
    const key = `${route.name}|${new URL(route.origin).origin}`
    let pool = this.#pools.get(key)
    if (pool === undefined) {
      // A Pool takes an origin only: a base path in the route's origin (http://host/base) is
      // prefixed to each request's path instead (originPath), never given to the Pool.
      pool = originPool(new URL(route.origin).origin, {
        connections: route.maxConnections,
        connectTimeout: route.timeouts.connect,
        headersTimeout: route.timeouts.headers,
        bodyTimeout: route.timeouts.body
      })
      this.#pools.set(key, pool)
    }
    return pool
  }

  /** Base path of the route's origin URL, prefixed to forwarded paths. */
  static originPath (route: RouteConfig): string {
    const p = new URL(route.origin).pathname
    return p === '/' ? '' : p.replace(/\/$/, '')
  }

  async request (route: RouteConfig, req: OriginRequest): Promise<OriginResponse> {
    const pool = this.#pool(route)
    // timeouts.body is the longest pause between chunks; timeouts.total bounds the whole
    // response, so an origin trickling a byte at a time cannot hold a fetch open for ever.
    const deadline = route.timeouts.total !== undefined ? AbortSignal.timeout(route.timeouts.total) : undefined
    const signal = deadline === undefined ? req.signal : req.signal === undefined ? deadline : AbortSignal.any([req.signal, deadline])
    const options: Dispatcher.RequestOptions = {
      method: req.method,
      path: OriginClient.originPath(route) + req.path,
      headers: req.headers,
      signal: signal ?? null,
      ...(req.onInfo !== undefined ? { onInfo: interimRelay(req.onInfo) } : {})
    }
    const idempotent = req.method === 'GET' || req.method === 'HEAD'
    try {
      return await this.#send(pool, options)
    } catch (err) {
      const code = (err as { code?: unknown } | null)?.code
      // Retry once: only idempotent requests, only on a connection error, which undici reports
      // from request() only before the response head is complete: an error after that
      // surfaces on the body stream and is never retried.
      if (idempotent && typeof code === 'string' && RETRYABLE.has(code) && signal?.aborted !== true) {
        try {
          return await this.#send(pool, options)
        } catch (again) {
          throw originError(again)
        }
      }
      throw originError(err)
    }
  }

  async #send (pool: Pool, options: Dispatcher.RequestOptions): Promise<OriginResponse> {
    const res = await pool.request(options)
    // The parser takes any three digits; a status outside RFC 9110 §15 cannot be relayed.
    if (res.statusCode < 100 || res.statusCode > 599) {
      // undici's body errors when destroyed: a listener keeps that from being unhandled.
      res.body.on('error', () => undefined).destroy()
      throw new GatewayError('CG_ERR_ORIGIN_BAD_RESPONSE', `The origin answered with status ${res.statusCode}`)
    }
    return { status: res.statusCode, headers: res.headers as Record<string, string | string[]>, body: res.body }
  }

  async close (): Promise<void> {
    await Promise.allSettled([...this.#pools.values(), ...this.#others.values()].map(async (p) => await p.close()))
  }
}
