/**
 * Fastly: surrogate-key purges in batches, URL purges one by one, purge-all.
 *
 * API: https://www.fastly.com/documentation/reference/api/purging/
 * - tags: POST /service/{service_id}/purge with `{"surrogate_keys": [...]}`, at most 256 keys
 *   per request ("Up to 256 surrogate keys can be purged in one batch request");
 * - URLs: POST /purge/{cached_url} (the URL without its scheme), one URL per request;
 * - all: POST /service/{service_id}/purge_all, which has no soft mode;
 * - soft purges send `Fastly-Soft-Purge: 1` (https://www.fastly.com/documentation/guides/full-site-delivery/purging/soft-purges/).
 * Fastly purges neither prefixes nor hosts: those are refused.
 */
import type { CdnConfig } from '../../config/types.ts'
import { chunk, isRecord, jsonMessage, withoutScheme, type ApiOutcome, type ApiRequest, type Batch, type CdnProvider, type CdnPurge, type Plan } from './types.ts'

export const FASTLY_MAX_KEYS = 256

type Config = Extract<CdnConfig, { provider: 'fastly' }>

export class Fastly implements CdnProvider {
  readonly provider = 'fastly'
  readonly #c: Config

  constructor (config: Config) {
    this.#c = config
  }

  plan (purge: CdnPurge): Plan {
    const refused: string[] = []
    if (purge.prefixes.length > 0) refused.push('prefixes: Fastly has no prefix purge; tag the responses (Surrogate-Key) and purge by tag')
    if (purge.hosts.length > 0) refused.push('hosts: Fastly has no host purge; purge by tag, or everything')
    if (purge.all) return { batches: [{ kind: 'all', items: [], soft: false }], refused }
    const batches: Batch[] = []
    for (const part of chunk(purge.tags, FASTLY_MAX_KEYS)) batches.push({ kind: 'tags', items: part, soft: purge.soft })
    for (const url of purge.urls) batches.push({ kind: 'urls', items: [url], soft: purge.soft })
    return { batches, refused }
  }

  request (batch: Batch): ApiRequest {
    const headers: Record<string, string> = { 'fastly-key': this.#c.token, accept: 'application/json' }
    if (batch.soft) headers['fastly-soft-purge'] = '1'
    const service = `${this.#c.apiBase}/service/${encodeURIComponent(this.#c.service)}`
    switch (batch.kind) {
      case 'all':
        return { method: 'POST', url: `${service}/purge_all`, headers, body: '' }
      case 'urls':
        return { method: 'POST', url: `${this.#c.apiBase}/purge/${withoutScheme(batch.items[0] ?? '')}`, headers, body: '' }
      default:
        return {
          method: 'POST',
          url: `${service}/purge`,
          headers: { ...headers, 'content-type': 'application/json' },
          body: JSON.stringify({ surrogate_keys: batch.items })
        }
    }
  }

  /** Errors are `{"msg": …, "detail": …}`. */
  outcome (status: number, body: string): ApiOutcome {
    if (status >= 200 && status < 300) return { ok: true }
    const message = jsonMessage(body, (j) => isRecord(j) ? (j['detail'] ?? j['msg']) : undefined)
    return { ok: false, message: message ?? `HTTP ${status}` }
  }
}
