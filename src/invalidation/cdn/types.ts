/**
 * CDN purge forwarding: what a provider module offers. A provider is pure: `plan` splits a
 * purge into batches within the provider's documented limits (and names what the provider
 * cannot purge), `request` builds one API request for a batch, `outcome` reads the answer.
 * Sending, retrying and queueing are forwarder.ts's and outbox.ts's.
 */
export interface CdnPurge {
  urls: readonly string[]
  prefixes: readonly string[]
  tags: readonly string[]
  hosts: readonly string[]
  all: boolean
  /** Mark stale rather than remove, where the provider can (Fastly-Soft-Purge, Akamai invalidate). */
  soft: boolean
}

export type BatchKind = 'urls' | 'prefixes' | 'tags' | 'hosts' | 'all'

/** One API request's worth of a purge; plain JSON, so it can wait in a Redis stream. */
export interface Batch {
  kind: BatchKind
  items: string[]
  soft: boolean
}

export interface Plan {
  batches: Batch[]
  /** What this provider cannot purge, one sentence each (reported in the purge response). */
  refused: string[]
}

export interface ApiRequest {
  method: 'POST'
  url: string
  headers: Record<string, string>
  body: string
}

export interface RequestContext {
  /** Milliseconds since the epoch (signatures carry a timestamp). */
  now: number
  /** Unique per batch, stable across its retries (idempotency tokens, caller references). */
  batchId: string
}

export type ApiOutcome = { ok: true } | { ok: false, message: string }

export interface CdnProvider {
  readonly provider: string
  plan(purge: CdnPurge): Plan
  request(batch: Batch, context: RequestContext): ApiRequest | Promise<ApiRequest>
  /** Reads a response that arrived (any status); retryable statuses are decided by the forwarder. */
  outcome(status: number, body: string): ApiOutcome
}

/** Splits items into chunks of at most `size` items. */
export function chunk (items: readonly string[], size: number): string[][] {
  const out: string[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}

/** Splits items into chunks whose JSON encoding stays within `maxBytes` (and `maxItems`). */
export function chunkByBytes (items: readonly string[], maxBytes: number, maxItems: number): string[][] {
  const out: string[][] = []
  let current: string[] = []
  let bytes = 0
  for (const item of items) {
    const size = Buffer.byteLength(JSON.stringify(item)) + 1
    if (current.length > 0 && (bytes + size > maxBytes || current.length >= maxItems)) {
      out.push(current)
      current = []
      bytes = 0
    }
    current.push(item)
    bytes += size
  }
  if (current.length > 0) out.push(current)
  return out
}

/** The first string among JSON fields that providers put their error text in. */
export function jsonMessage (body: string, pick: (json: unknown) => unknown): string | undefined {
  try {
    const value = pick(JSON.parse(body) as unknown)
    return typeof value === 'string' && value !== '' ? value.slice(0, 500) : undefined
  } catch {
    return undefined
  }
}

export function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** `https://shop.example/a?b` -> `shop.example/a?b`: the URL without its scheme. */
export function withoutScheme (url: string): string {
  return url.replace(/^https?:\/\//i, '')
}
