/**
 * Akamai Fast Purge v3, signed with EdgeGrid by Akamai's own library (akamai-edgegrid).
 *
 * API: https://techdocs.akamai.com/purge-cache/reference/api-summary
 * - URLs: POST /ccu/v3/{invalidate|delete}/url/{network} with `{"objects": [...]}`;
 * - tags: POST /ccu/v3/{invalidate|delete}/tag/{network} (https://techdocs.akamai.com/purge-cache/docs/purge-content-cache-tag);
 * - a soft purge is an invalidate (stale, revalidated), a hard one a delete
 *   (https://techdocs.akamai.com/purge-cache/docs/invalidate-delete);
 * - a body may not exceed 50,000 bytes (https://techdocs.akamai.com/purge-cache/reference/413).
 * Fast Purge has no prefix, host or purge-all by those names (only CP codes, which a
 * gateway purge does not know): those parts are refused.
 */
import EdgeGrid from 'akamai-edgegrid'
import type { CdnConfig } from '../../config/types.ts'
import { chunkByBytes, isRecord, jsonMessage, type ApiOutcome, type ApiRequest, type Batch, type CdnProvider, type CdnPurge, type Plan } from './types.ts'

/** Request body limit, less room for `{"objects":[]}`. */
export const AKAMAI_MAX_BODY_BYTES = 50_000 - 20
/** Fast Purge's object limit per request is far above what fits in 50 kB; this only bounds a batch of short tags. */
export const AKAMAI_MAX_OBJECTS = 5000

type Config = Extract<CdnConfig, { provider: 'akamai' }>

interface SignedRequest {
  url: string
  headers: Record<string, string>
}

export class Akamai implements CdnProvider {
  readonly provider = 'akamai'
  readonly #c: Config
  readonly #edgegrid: EdgeGrid

  constructor (config: Config) {
    this.#c = config
    // The library takes the bare API host and signs for https (Akamai's APIs are HTTPS only).
    this.#edgegrid = new EdgeGrid(config.clientToken, config.clientSecret, config.accessToken, new URL(config.apiBase).host)
  }

  plan (purge: CdnPurge): Plan {
    const refused: string[] = []
    if (purge.prefixes.length > 0) refused.push('prefixes: Akamai Fast Purge has no prefix purge; tag the responses (Edge-Cache-Tag) and purge by tag')
    if (purge.hosts.length > 0) refused.push('hosts: Akamai Fast Purge has no host purge; purge by tag or CP code')
    if (purge.all) refused.push('all: Akamai Fast Purge purges everything only by CP code; tag every response and purge that tag')
    const batches: Batch[] = []
    for (const kind of ['urls', 'tags'] as const) {
      for (const part of chunkByBytes(purge[kind], AKAMAI_MAX_BODY_BYTES, AKAMAI_MAX_OBJECTS)) batches.push({ kind, items: part, soft: purge.soft })
    }
    return { batches, refused }
  }

  request (batch: Batch): ApiRequest {
    const action = batch.soft ? 'invalidate' : 'delete'
    const type = batch.kind === 'tags' ? 'tag' : 'url'
    const path = `/ccu/v3/${action}/${type}/${this.#c.network}`
    const body = JSON.stringify({ objects: batch.items })
    // The library signs the method, URL, the body's hash, a timestamp and a nonce (EG1-HMAC-SHA256).
    const signed = this.#edgegrid.auth({ path, method: 'POST', headers: { 'Content-Type': 'application/json' }, body }).request as SignedRequest
    // Sent to apiBase as configured: an http:// base (a test's fake API) still gets the https signature.
    const url = new URL(signed.url)
    const base = new URL(this.#c.apiBase)
    url.protocol = base.protocol
    return {
      method: 'POST',
      url: url.href,
      headers: { 'content-type': 'application/json', authorization: signed.headers['Authorization'] ?? '' },
      body
    }
  }

  /** Errors are problem details: `{"type", "title", "detail", "status"}`. */
  outcome (status: number, body: string): ApiOutcome {
    if (status >= 200 && status < 300) return { ok: true }
    const message = jsonMessage(body, (j) => isRecord(j) ? (j['detail'] ?? j['title']) : undefined)
    return { ok: false, message: message ?? `HTTP ${status}` }
  }
}
