/**
 * The gateway's own origin fetches: one undici Pool per route, with separate connect,
 * headers and body timeouts, and a cap on connections. Errors are mapped to the catalogue
 * (502 unreachable or malformed, 504 timeout). Idempotent requests are retried once on a
 * connection error that happened before any response byte arrived, never after.
 */
import type { Readable } from 'node:stream'
import { Agent, Pool, errors as undiciErrors, type Dispatcher } from 'undici'
import type { RouteConfig } from '../config/types.ts'
import { GatewayError } from '../errors.ts'

export interface OriginRequest {
  method: string
  /** Normalized path and query. */
  path: string
  headers: Record<string, string | string[]>
  signal?: AbortSignal
}

export interface OriginResponse {
  status: number
  headers: Record<string, string | string[]>
  body: Readable
}

const RETRYABLE = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'UND_ERR_SOCKET', 'ECONNABORTED'])

/** Maps an undici or socket error to the gateway's error catalogue. */
export function originError (err: unknown): GatewayError {
  if (err instanceof GatewayError) return err
  const code = (err as { code?: string } | null)?.code ?? ''
  if (err instanceof undiciErrors.ConnectTimeoutError || err instanceof undiciErrors.HeadersTimeoutError ||
    err instanceof undiciErrors.BodyTimeoutError || code === 'UND_ERR_CONNECT_TIMEOUT' ||
    code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return new GatewayError('CG_ERR_ORIGIN_TIMEOUT', undefined, { cause: err })
  }
  if (code.startsWith('HPE_') || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' || code === 'UND_ERR_INFO') {
    return new GatewayError('CG_ERR_ORIGIN_BAD_RESPONSE', undefined, { cause: err })
  }
  return new GatewayError('CG_ERR_ORIGIN_UNREACHABLE', undefined, { cause: err })
}

export class OriginClient {
  readonly #pools = new Map<string, Pool>()
  /** Dispatcher for pass-through (reply-from): routes each origin to the same pools. */
  readonly dispatcher: Agent

  constructor (routes: readonly RouteConfig[]) {
    for (const route of routes) this.#pool(route)
    this.dispatcher = new Agent({
      factory: (origin: string | URL, opts: object) => {
        const existing = this.#byOrigin(String(origin))
        return existing ?? new Pool(origin, opts)
      }
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
      pool = new Pool(route.origin, {
        connections: route.maxConnections,
        connect: { timeout: route.timeouts.connect },
        headersTimeout: route.timeouts.headers,
        bodyTimeout: route.timeouts.body,
        keepAliveTimeout: 4_000
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
    const options: Dispatcher.RequestOptions = {
      method: req.method,
      path: OriginClient.originPath(route) + req.path,
      headers: req.headers,
      signal: req.signal ?? null
    }
    const idempotent = req.method === 'GET' || req.method === 'HEAD'
    try {
      return await this.#send(pool, options)
    } catch (err) {
      const code = (err as { code?: string } | null)?.code ?? ''
      // Retry once: only idempotent requests, only when no response byte was received.
      if (idempotent && RETRYABLE.has(code) && req.signal?.aborted !== true) {
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
    return { status: res.statusCode, headers: res.headers as Record<string, string | string[]>, body: res.body }
  }

  async close (): Promise<void> {
    await Promise.allSettled([...this.#pools.values()].map(async (p) => await p.close()))
    await this.dispatcher.close().catch(() => undefined)
  }
}
