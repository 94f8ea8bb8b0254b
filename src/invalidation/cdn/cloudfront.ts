/**
 * Amazon CloudFront CreateInvalidation, signed with AWS Signature Version 4 by the AWS SDK's
 * own signer (@smithy/signature-v4).
 *
 * API: https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_CreateInvalidation.html
 * POST /2020-05-31/distribution/{Id}/invalidation with an XML InvalidationBatch (Paths,
 * CallerReference). Paths start with "/"; a trailing "*" invalidates a prefix.
 * Limits (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cloudfront-limits.html#limits-invalidations):
 * 3,000 paths in progress per distribution, of which at most 15 with wildcards: a batch holds
 * at most 3,000 paths, or 15 wildcard paths. A distribution is one site, so the host of each
 * URL is dropped; tags and hosts have no CloudFront equivalent and are refused, and an
 * invalidation is always a removal (no soft purge).
 */
import { Hash } from '@smithy/core/serde'
import { SignatureV4 } from '@smithy/signature-v4'
import type { CdnConfig } from '../../config/types.ts'
import { chunk, type ApiOutcome, type ApiRequest, type Batch, type CdnProvider, type CdnPurge, type Plan, type RequestContext } from './types.ts'

export const CLOUDFRONT_MAX_PATHS = 3000
export const CLOUDFRONT_MAX_WILDCARDS = 15
/** CloudFront is a global service signed in us-east-1. */
export const CLOUDFRONT_REGION = 'us-east-1'

type Config = Extract<CdnConfig, { provider: 'cloudfront' }>

/** The path (and query) of an absolute URL; `*` kept as the wildcard. */
function pathOf (url: string): string {
  const m = /^https?:\/\/[^/?#]*([^#]*)/i.exec(url)
  const path = m?.[1] ?? '/'
  return path.startsWith('/') ? path : `/${path}`
}

function xmlEscape (text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;')
}

export class CloudFront implements CdnProvider {
  readonly provider = 'cloudfront'
  readonly #c: Config
  readonly #signer: SignatureV4

  constructor (config: Config) {
    this.#c = config
    this.#signer = new SignatureV4({
      service: 'cloudfront',
      region: CLOUDFRONT_REGION,
      sha256: Hash.bind(null, 'sha256'),
      credentials: {
        accessKeyId: config.accessKeyId,
        secretAccessKey: config.secretAccessKey,
        ...(config.sessionToken !== undefined ? { sessionToken: config.sessionToken } : {})
      }
    })
  }

  plan (purge: CdnPurge): Plan {
    const refused: string[] = []
    if (purge.tags.length > 0) refused.push('tags: CloudFront has no tag invalidation; purge by URL or prefix')
    if (purge.hosts.length > 0) refused.push('hosts: CloudFront invalidates per distribution, not per host; purge everything ("all") or by prefix')
    if (purge.all) return { batches: [{ kind: 'all', items: ['/*'], soft: false }], refused }
    const batches: Batch[] = []
    const urls = [...new Set(purge.urls.map(pathOf))]
    for (const part of chunk(urls, CLOUDFRONT_MAX_PATHS)) batches.push({ kind: 'urls', items: part, soft: false })
    // A prefix "/products/" becomes "/products/*" (a prefix query part has no CloudFront form: dropped with it).
    const prefixes = [...new Set(purge.prefixes.map((p) => `${pathOf(p).split('?')[0] ?? '/'}*`))]
    for (const part of chunk(prefixes, CLOUDFRONT_MAX_WILDCARDS)) batches.push({ kind: 'prefixes', items: part, soft: false })
    return { batches, refused }
  }

  async request (batch: Batch, context: RequestContext): Promise<ApiRequest> {
    const items = batch.items.map((p) => `<Path>${xmlEscape(p)}</Path>`).join('')
    const body = '<?xml version="1.0" encoding="UTF-8"?>\n' +
      '<InvalidationBatch xmlns="http://cloudfront.amazonaws.com/doc/2020-05-31/">' +
      `<Paths><Quantity>${batch.items.length}</Quantity><Items>${items}</Items></Paths>` +
      // Stable across retries of the batch: CloudFront answers a repeated reference with the same invalidation.
      `<CallerReference>${xmlEscape(context.batchId)}</CallerReference>` +
      '</InvalidationBatch>'
    const url = new URL(`${this.#c.apiBase}/2020-05-31/distribution/${encodeURIComponent(this.#c.distribution)}/invalidation`)
    const signed = await this.#signer.sign({
      method: 'POST',
      protocol: url.protocol,
      hostname: url.hostname,
      ...(url.port !== '' ? { port: Number(url.port) } : {}),
      path: url.pathname,
      query: {},
      headers: { host: url.host, 'content-type': 'application/xml' },
      body
    }, { signingDate: new Date(context.now) })
    const headers: Record<string, string> = {}
    for (const [name, value] of Object.entries(signed.headers)) if (name !== 'host') headers[name.toLowerCase()] = value
    return { method: 'POST', url: url.href, headers, body }
  }

  /** Errors are `<ErrorResponse><Error><Code/><Message/></Error></ErrorResponse>`. */
  outcome (status: number, body: string): ApiOutcome {
    if (status >= 200 && status < 300) return { ok: true }
    const message = /<Message>([^<]{1,500})<\/Message>/.exec(body)?.[1]
    const code = /<Code>([^<]{1,100})<\/Code>/.exec(body)?.[1]
    return { ok: false, message: message !== undefined ? `${code !== undefined ? `${code}: ` : ''}${message}` : `HTTP ${status}` }
  }
}
