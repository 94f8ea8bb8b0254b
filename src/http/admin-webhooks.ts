/**
 * CMS webhooks on the admin listener: `POST /webhooks/<name>` for each `webhooks[]` entry.
 * The body is read raw whatever its Content-Type (Contentful sends
 * application/vnd.contentful.management.v1+json, Storyblok may send text), the CMS's signature
 * is checked over those bytes before anything is parsed, the payload is mapped through the
 * templates, and the answer comes at once, as CMSes expect (they time out and retry slow
 * receivers): 202 with the purge it started in the background, or 200 when the templates
 * selected nothing. The purge goes through the normal purger, so CDN forwarding applies.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { WebhookConfig } from '../config/types.ts'
import { GatewayError } from '../errors.ts'
import type { Purger } from '../invalidation/purge.ts'
import { isEmptyPurge, parsePayload, payloadFields, webhookPurge } from '../invalidation/webhooks/payload.ts'
import { verifyWebhook } from '../invalidation/webhooks/verify.ts'

export interface WebhookRoutesOptions {
  webhooks: () => readonly WebhookConfig[] | undefined
  purger: Pick<Purger, 'purge'>
  now: () => number
  /** Runs the purge after the answer (the gateway's task registry: awaited by tests and shutdown). */
  background: (name: string, fn: () => Promise<unknown>) => void
  log: {
    info: (fields: Record<string, unknown>, msg: string) => void
    warn: (fields: Record<string, unknown>, msg: string) => void
  }
}

export async function registerWebhookRoutes (app: FastifyInstance, options: WebhookRoutesOptions): Promise<void> {
  // An encapsulated context: its body parser applies to these routes only.
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_request: FastifyRequest, body: Buffer, done) => { done(null, body) })

    scope.post<{ Params: { name: string } }>('/webhooks/:name', async (request, reply) => {
      const name = request.params.name
      const hook = options.webhooks()?.find((w) => w.name === name)
      if (hook === undefined) throw new GatewayError('CG_ERR_NO_ROUTE', `No webhook named ${JSON.stringify(name.slice(0, 64))}: configure it under webhooks in routes.yaml`)
      const body = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0)

      const verdict = verifyWebhook(hook, { method: request.method, url: request.raw.url ?? request.url, headers: request.headers, body }, options.now())
      if (!verdict.ok) {
        options.log.warn({ webhook: hook.name, kind: hook.kind, ip: request.ip, reason: verdict.reason }, 'webhook refused')
        throw new GatewayError('CG_ERR_WEBHOOK_SIGNATURE', `Webhook ${hook.name} (${hook.kind}): ${verdict.reason}`)
      }

      let payload: unknown
      try {
        payload = parsePayload(body.toString('utf8'))
      } catch {
        throw new GatewayError('CG_ERR_WEBHOOK_INVALID', `Webhook ${hook.name}: the body is not valid JSON`)
      }
      if (typeof payload !== 'object' || payload === null || Array.isArray(payload)) {
        throw new GatewayError('CG_ERR_WEBHOOK_INVALID', `Webhook ${hook.name}: expected a JSON object`)
      }

      const { purge, skipped } = webhookPurge(hook, payloadFields(hook, payload, request.headers))
      const queued = !isEmptyPurge(purge)
      options.log.info({ webhook: hook.name, kind: hook.kind, tags: purge.tags.length, urls: purge.urls.length, prefixes: purge.prefixes.length, skipped: skipped.length }, 'webhook accepted')
      if (queued) options.background(`webhook ${hook.name}`, async () => await options.purger.purge(purge))
      reply.code(queued ? 202 : 200).header('cache-control', 'no-store')
      return {
        webhook: hook.name,
        kind: hook.kind,
        queued,
        purge: { tags: purge.tags, urls: purge.urls, prefixes: purge.prefixes, mode: purge.mode },
        skipped
      }
    })
  })
}
