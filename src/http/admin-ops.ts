/**
 * Operations endpoints on the admin listener:
 *
 *   GET  /readyz    readiness for orchestrators (open): 200 ready or degraded, 503 not ready
 *   GET  /metrics   Prometheus text (open, like most scrape targets: the admin listener is on
 *                   loopback by default; put it on a private network, never the public one)
 *   POST /reload    reload routes.yaml (token): 200 with the new routes, 400 with the problems
 *   GET  /explain   ?url=<absolute URL>[&header=name:value…] (token): how that URL is cached
 *
 * GET /healthz (liveness) is createAdminApp's own.
 */
import type { FastifyInstance } from 'fastify'
import type { IncomingHeaders } from '../cache/headers.ts'
import { ConfigError } from '../config/load.ts'
import type { AdminConfig, GatewayConfig } from '../config/types.ts'
import { GatewayError } from '../errors.ts'
import type { Explanation } from '../lifecycle/explain.ts'
import type { Readiness } from '../observability/health.ts'
import type { Logger } from '../observability/logger.ts'
import { requireAdmin } from './admin-auth.ts'
import { sendError } from './respond.ts'

export type ReloadResult =
  | { ok: true, routes: string[], restartRequired: string[] }
  | { ok: false, problems: string[] }

/** Settings a reload cannot change in a running gateway: they take effect at the next start. */
const AT_NEXT_START: ReadonlyArray<[string, (c: GatewayConfig) => unknown]> = [
  ['listen', (c) => c.listen],
  ['admin.host', (c) => c.admin.host],
  ['admin.port', (c) => c.admin.port],
  ['redis', (c) => c.redis],
  ['cache', (c) => c.cache],
  ['limits.maxHeaderBytes', (c) => c.limits.maxHeaderBytes],
  ['shutdownTimeout', (c) => c.shutdownTimeout]
]

/**
 * Reads the configuration again and applies it, or refuses it and keeps the running one.
 * The problems are logged with the same precise messages as at start.
 */
export async function reloadFrom (
  source: (() => Promise<GatewayConfig>) | undefined,
  current: GatewayConfig,
  apply: (next: GatewayConfig) => void,
  logger: Logger
): Promise<ReloadResult> {
  if (source === undefined) return { ok: false, problems: ['this gateway was started without a configuration file to reload'] }
  let next: GatewayConfig
  try {
    next = await source()
  } catch (err) {
    const problems = err instanceof ConfigError ? err.problems : [err instanceof Error ? err.message : String(err)]
    logger.error({ problems }, `configuration reload refused, the running configuration is kept:\n${problems.join('\n')}`)
    return { ok: false, problems }
  }
  const restartRequired = AT_NEXT_START
    .filter(([, pick]) => JSON.stringify(pick(next)) !== JSON.stringify(pick(current)))
    .map(([name]) => name)
  if (restartRequired.length > 0) logger.warn({ settings: restartRequired }, 'these settings changed and take effect at the next start')
  apply(next)
  return { ok: true, routes: next.routes.map((r) => r.name), restartRequired }
}

export interface OpsDeps {
  admin: () => AdminConfig
  readiness: () => Promise<Readiness>
  metrics: () => Promise<{ contentType: string, text: string }>
  reload: () => Promise<ReloadResult>
  explain: (url: string, headers: IncomingHeaders) => Promise<Explanation>
}

/** `header=name:value` query parameters as request headers (lower-case names; repeats joined like HTTP does). */
export function explainHeaders (raw: unknown): IncomingHeaders | string {
  const list = raw === undefined ? [] : Array.isArray(raw) ? raw as unknown[] : [raw]
  const headers: Record<string, string> = {}
  for (const item of list) {
    const text = String(item)
    const colon = text.indexOf(':')
    const name = colon === -1 ? '' : text.slice(0, colon).trim().toLowerCase()
    if (!/^[!#$%&'*+\-.^_`|~0-9a-z]+$/.test(name)) return `header must be "name: value", got ${JSON.stringify(text)}`
    const value = text.slice(colon + 1).trim()
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`
  }
  return headers
}

export function registerOpsRoutes (app: FastifyInstance, deps: OpsDeps): void {
  const protectedRoute = { preHandler: requireAdmin(deps.admin) }

  app.get('/readyz', async (_request, reply) => {
    const r = await deps.readiness()
    reply.header('cache-control', 'no-store')
    return await reply.code(r.status === 'not-ready' ? 503 : 200).send(r)
  })

  app.get('/metrics', async (_request, reply) => {
    const { contentType, text } = await deps.metrics()
    return await reply.header('content-type', contentType).header('cache-control', 'no-store').send(text)
  })

  app.post('/reload', protectedRoute, async (_request, reply) => {
    const result = await deps.reload()
    if (result.ok) return await reply.send({ status: 'reloaded', routes: result.routes, restartRequired: result.restartRequired })
    // The file, not the server, is at fault: CG_ERR_CONFIG_INVALID is a 400.
    const body = new GatewayError('CG_ERR_CONFIG_INVALID', 'The configuration file is invalid: nothing was changed, the running configuration is kept').toBody()
    return await reply.code(body.statusCode).send({ ...body, problems: result.problems })
  })

  app.get('/explain', protectedRoute, async (request, reply) => {
    const query = request.query as Record<string, unknown>
    const url = query.url
    if (typeof url !== 'string' || url === '') {
      sendError(reply, new GatewayError('CG_ERR_BAD_REQUEST', 'Give the URL to explain: GET /explain?url=https://host/path'))
      return reply
    }
    if (!/^https?:\/\/[^/?#]/i.test(url)) {
      sendError(reply, new GatewayError('CG_ERR_BAD_REQUEST', `Give an absolute http(s) URL as a client would send it, e.g. /explain?url=https://api.example.com/products/1 (got ${JSON.stringify(url.slice(0, 200))})`))
      return reply
    }
    const headers = explainHeaders(query.header)
    if (typeof headers === 'string') {
      sendError(reply, new GatewayError('CG_ERR_BAD_REQUEST', headers))
      return reply
    }
    return await reply.header('cache-control', 'no-store').send(await deps.explain(url, headers))
  })
}
