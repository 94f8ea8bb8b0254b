/**
 * `webhook`: POSTs a JSON description of the purge to any URL, signed like cachegate's own
 * webhooks (`X-Cachegate-Signature: sha256=<hex HMAC-SHA256 of the body>`) when a secret is
 * set. Body: `{"cdn": name, "id": batchId, "kind", "items", "soft", "at": ISO time}`. One request per
 * purge kind, at most 256 items each (the gateway's own purge limit).
 */
import { createHmac } from 'node:crypto'
import type { CdnConfig } from '../../config/types.ts'
import { chunk, type ApiOutcome, type ApiRequest, type Batch, type CdnProvider, type CdnPurge, type Plan, type RequestContext } from './types.ts'

export const WEBHOOK_MAX_ITEMS = 256

/** HMAC-SHA256 of a body, as `sha256=<hex>`: the X-Cachegate-Signature of an outgoing webhook. */
export function signBody (secret: string, body: Buffer | string): string {
  return 'sha256=' + createHmac('sha256', secret).update(body).digest('hex')
}

type Config = Extract<CdnConfig, { provider: 'webhook' }>

export class Webhook implements CdnProvider {
  readonly provider = 'webhook'
  readonly #c: Config

  constructor (config: Config) {
    this.#c = config
  }

  plan (purge: CdnPurge): Plan {
    if (purge.all) return { batches: [{ kind: 'all', items: [], soft: purge.soft }], refused: [] }
    const batches: Batch[] = []
    for (const kind of ['urls', 'prefixes', 'tags', 'hosts'] as const) {
      for (const part of chunk(purge[kind], WEBHOOK_MAX_ITEMS)) batches.push({ kind, items: part, soft: purge.soft })
    }
    return { batches, refused: [] }
  }

  request (batch: Batch, context: RequestContext): ApiRequest {
    const body = JSON.stringify({ cdn: this.#c.name, id: context.batchId, kind: batch.kind, items: batch.items, soft: batch.soft, at: new Date(context.now).toISOString() })
    const headers: Record<string, string> = { 'content-type': 'application/json' }
    if (this.#c.secret !== undefined) headers['x-cachegate-signature'] = signBody(this.#c.secret, body)
    return { method: 'POST', url: this.#c.apiBase, headers, body }
  }

  outcome (status: number, body: string): ApiOutcome {
    if (status >= 200 && status < 300) return { ok: true }
    return { ok: false, message: body.trim().slice(0, 200) || `HTTP ${status}` }
  }
}
