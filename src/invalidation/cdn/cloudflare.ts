/**
 * Cloudflare: one POST to the zone's purge_cache endpoint per batch.
 *
 * API: https://developers.cloudflare.com/api/resources/cache/methods/purge/
 * Limits: https://developers.cloudflare.com/cache/how-to/purge-cache/ ("Max operations per
 * request: 100" on every plan, 500 URLs on Enterprise; we keep to 100). Each request carries
 * one kind: `files` (URLs), `tags`, `hosts`, `prefixes` (without scheme) or
 * `purge_everything`. Cloudflare has no soft purge: a soft purge is forwarded as a purge.
 */
import type { CdnConfig } from '../../config/types.ts'
import { chunk, isRecord, jsonMessage, withoutScheme, type ApiOutcome, type ApiRequest, type Batch, type CdnProvider, type CdnPurge, type Plan } from './types.ts'

export const CLOUDFLARE_MAX_ITEMS = 100

type Config = Extract<CdnConfig, { provider: 'cloudflare' }>

export class Cloudflare implements CdnProvider {
  readonly provider = 'cloudflare'
  readonly #c: Config

  constructor (config: Config) {
    this.#c = config
  }

  plan (purge: CdnPurge): Plan {
    if (purge.all) return { batches: [{ kind: 'all', items: [], soft: false }], refused: [] }
    const batches: Batch[] = []
    for (const kind of ['urls', 'tags', 'hosts', 'prefixes'] as const) {
      // Prefixes are written without the scheme (https://developers.cloudflare.com/cache/how-to/purge-cache/purge_by_prefix/).
      const items = kind === 'prefixes' ? [...new Set(purge.prefixes.map(withoutScheme))] : [...purge[kind]]
      for (const part of chunk(items, CLOUDFLARE_MAX_ITEMS)) batches.push({ kind, items: part, soft: false })
    }
    return { batches, refused: [] }
  }

  request (batch: Batch): ApiRequest {
    const body = batch.kind === 'all'
      ? { purge_everything: true }
      : { [batch.kind === 'urls' ? 'files' : batch.kind]: batch.items }
    return {
      method: 'POST',
      url: `${this.#c.apiBase}/zones/${encodeURIComponent(this.#c.zone)}/purge_cache`,
      headers: { authorization: `Bearer ${this.#c.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body)
    }
  }

  /** Answers are `{success, errors: [{code, message}], result}`; a 200 with success false is a failure. */
  outcome (status: number, body: string): ApiOutcome {
    const message = jsonMessage(body, (j) => isRecord(j) && Array.isArray(j['errors']) && isRecord(j['errors'][0]) ? j['errors'][0]['message'] : undefined)
    const refused = jsonMessage(body, (j) => isRecord(j) && j['success'] === false ? 'refused' : undefined) !== undefined
    if (status >= 200 && status < 300 && !refused) return { ok: true }
    return { ok: false, message: message ?? `HTTP ${status}` }
  }
}
