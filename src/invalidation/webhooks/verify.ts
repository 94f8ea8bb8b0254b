/**
 * CMS webhook signatures: each kind checks its CMS's documented scheme over the raw body
 * (never a re-serialized one), with constant-time comparisons and, where the scheme signs a
 * timestamp, a refusal of timestamps further than `tolerance` from `now` (either way: a clock
 * skew the CMS could not have, or a replay). Pure but for node:crypto; `now` is passed in.
 * Reasons name what is wrong, never a secret or an expected value.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import { escape as escapeQuery } from 'node:querystring'
import type { WebhookConfig } from '../../config/types.ts'

export interface SignedRequest {
  method: string
  /** The request target as received (path and query), for schemes that sign it (Contentful). */
  url: string
  /** Node's headers: lower-case names. */
  headers: Readonly<Record<string, string | string[] | undefined>>
  body: Buffer
}

export type Verdict = { ok: true } | { ok: false, reason: string }

const OK: Verdict = { ok: true }
const refuse = (reason: string): Verdict => ({ ok: false, reason })

/** Constant-time string comparison that hides the length too (both sides hashed first). */
export function safeEqual (a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest())
}

function hmac (algorithm: 'sha256' | 'sha1', secret: string, data: Buffer | string): Buffer {
  return createHmac(algorithm, secret).update(data).digest()
}

/** One header as a single string; a repeated signature header is refused (undefined). */
function header (request: SignedRequest, name: string): string | undefined {
  const value = request.headers[name]
  return typeof value === 'string' ? value.trim() : undefined
}

function fresh (timestamp: number, now: number, tolerance: number): boolean {
  return Math.abs(now - timestamp) <= tolerance
}

/** The webhook's scheme applied to one request. */
export function verifyWebhook (hook: WebhookConfig, request: SignedRequest, now: number): Verdict {
  switch (hook.kind) {
    case 'shopify': return shopify(hook.secret, request)
    case 'contentful': return contentful(hook, request, now)
    case 'sanity': return sanity(hook, request, now)
    case 'storyblok': return storyblok(hook.secret, request)
    case 'strapi': return token(hook.secret, request, hook.header ?? 'authorization')
    case 'generic': return generic(hook.secret, request, hook.header ?? GENERIC_HEADER)
  }
}

/**
 * Shopify: X-Shopify-Hmac-SHA256 is the base64 HMAC-SHA256 of the raw body under the app's
 * client secret (or the store's webhook signing key). No timestamp is signed.
 * https://shopify.dev/docs/apps/build/webhooks/verify-deliveries
 */
function shopify (secret: string, request: SignedRequest): Verdict {
  const sent = header(request, 'x-shopify-hmac-sha256')
  if (sent === undefined) return refuse('missing X-Shopify-Hmac-SHA256')
  return safeEqual(hmac('sha256', secret, request.body).toString('base64'), sent) ? OK : refuse('X-Shopify-Hmac-SHA256 does not match the body')
}

const CONTENTFUL_SIGNATURE = 'x-contentful-signature'
const CONTENTFUL_TIMESTAMP = 'x-contentful-timestamp'
const CONTENTFUL_SIGNED_HEADERS = 'x-contentful-signed-headers'

/**
 * Contentful request verification: x-contentful-signature is the hex HMAC-SHA256 of the
 * canonical request `METHOD\npath\nheaders\nbody`, where path is the request target encoded as
 * Contentful encodes it, and headers are the names listed in x-contentful-signed-headers (plus
 * that field and x-contentful-timestamp, milliseconds since the epoch), lower-cased, values
 * trimmed, sorted by name, written `name:value` and joined with ";".
 * https://www.contentful.com/developers/docs/webhooks/request-verification/
 * https://github.com/contentful/node-apps-toolkit (src/requests/sign-request.ts, verify-request.ts)
 */
function contentful (hook: WebhookConfig, request: SignedRequest, now: number): Verdict {
  const signature = header(request, CONTENTFUL_SIGNATURE)
  const stamp = header(request, CONTENTFUL_TIMESTAMP)
  const signedList = header(request, CONTENTFUL_SIGNED_HEADERS)
  if (signature === undefined || stamp === undefined || signedList === undefined) {
    return refuse('missing x-contentful-signature, x-contentful-timestamp or x-contentful-signed-headers (enable request verification for the webhook)')
  }
  if (!/^\d{1,16}$/.test(stamp)) return refuse('x-contentful-timestamp is not a time in milliseconds')
  const timestamp = Number(stamp)
  if (!fresh(timestamp, now, hook.tolerance)) return refuse(`x-contentful-timestamp is more than ${hook.tolerance / 1000} s away from now (stale or replayed)`)

  const names = signedList.split(',')
  const picked = new Map<string, string>()
  for (const [name, value] of Object.entries(request.headers)) {
    if (typeof value === 'string' && names.includes(name)) picked.set(name, value.trim())
  }
  const listed = [...picked.keys()]
  if (!picked.has(CONTENTFUL_SIGNED_HEADERS)) listed.push(CONTENTFUL_SIGNED_HEADERS)
  if (!picked.has(CONTENTFUL_TIMESTAMP)) listed.push(CONTENTFUL_TIMESTAMP)
  picked.set(CONTENTFUL_TIMESTAMP, String(timestamp))
  picked.set(CONTENTFUL_SIGNED_HEADERS, listed.sort().join(','))
  const headers = [...picked.entries()].sort(([a], [b]) => (a > b ? 1 : -1)).map(([k, v]) => `${k}:${v}`).join(';')
  const canonical = [request.method.toUpperCase(), contentfulPath(request.url), headers, request.body.toString('utf8')].join('\n')
  return safeEqual(hmac('sha256', hook.secret, canonical).toString('hex'), signature) ? OK : refuse('x-contentful-signature does not match the request')
}

/** The toolkit's getNormalizedEncodedURI: the query escaped as a whole, then encodeURI. */
function contentfulPath (url: string): string {
  const [pathname = '', search] = url.split('?')
  const escaped = search === undefined || search === '' ? '' : escapeQuery(search)
  try {
    return encodeURI(escaped === '' ? pathname : `${pathname}?${escaped}`)
  } catch {
    return '' // a lone surrogate cannot be encoded: no signature will match
  }
}

/**
 * Sanity GROQ webhooks: `sanity-webhook-signature: t=<ms>,v1=<sig>`, sig the base64url
 * HMAC-SHA256 of `<t>.<raw body>` under the webhook's secret.
 * https://www.sanity.io/docs/webhooks (Secrets); https://github.com/sanity-io/webhook-toolkit (src/signature.ts)
 */
function sanity (hook: WebhookConfig, request: SignedRequest, now: number): Verdict {
  const sent = header(request, 'sanity-webhook-signature')
  if (sent === undefined) return refuse('missing sanity-webhook-signature')
  const m = /^t=(\d{1,16})[, ]+v1=([^, ]+)$/.exec(sent)
  if (m === null) return refuse('sanity-webhook-signature is not "t=<timestamp>,v1=<signature>"')
  const timestamp = Number(m[1])
  if (!fresh(timestamp, now, hook.tolerance)) return refuse(`the signed timestamp is more than ${hook.tolerance / 1000} s away from now (stale or replayed)`)
  const expected = hmac('sha256', hook.secret, Buffer.concat([Buffer.from(`${m[1] ?? ''}.`), request.body])).toString('base64url')
  return safeEqual(expected, m[2] ?? '') ? OK : refuse('sanity-webhook-signature does not match the body')
}

/**
 * Storyblok: `webhook-signature` is the hex HMAC-SHA1 of the raw body under the webhook
 * secret. No timestamp is signed.
 * https://www.storyblok.com/tp/webhook-secret-with-different-technologies
 * https://www.storyblok.com/docs/concepts/webhooks
 */
function storyblok (secret: string, request: SignedRequest): Verdict {
  const sent = header(request, 'webhook-signature')
  if (sent === undefined) return refuse('missing webhook-signature (set a webhook secret in Storyblok)')
  return safeEqual(hmac('sha1', secret, request.body).toString('hex'), sent.toLowerCase()) ? OK : refuse('webhook-signature does not match the body')
}

/**
 * Strapi signs nothing: its documentation secures webhooks with a token in a header set on the
 * webhook (`Authorization: Bearer <token>` in its example). The header's value must be the
 * secret, or `Bearer <secret>`.
 * https://docs.strapi.io/cms/backend-customization/webhooks#securing-your-webhooks
 */
function token (secret: string, request: SignedRequest, name: string): Verdict {
  const sent = header(request, name)
  if (sent === undefined) return refuse(`missing ${name}`)
  // Both comparisons always run: the time taken does not tell which form was close.
  const plain = safeEqual(sent, secret)
  const bearer = safeEqual(sent, `Bearer ${secret}`)
  return plain || bearer ? OK : refuse(`${name} is not the configured token`)
}

/** The generic kind's header unless `header` names another. */
export const GENERIC_HEADER = 'x-cachegate-signature'

/**
 * generic: `sha256=<hex>`, the HMAC-SHA256 of the raw body (as in cachegate's own
 * X-Cachegate-Signature), or the secret itself as a token (optionally `Bearer <secret>`).
 */
function generic (secret: string, request: SignedRequest, name: string): Verdict {
  const sent = header(request, name)
  if (sent === undefined) return refuse(`missing ${name}`)
  if (sent.startsWith('sha256=')) {
    return safeEqual('sha256=' + hmac('sha256', secret, request.body).toString('hex'), sent.toLowerCase()) ? OK : refuse(`${name} does not match the body`)
  }
  return token(secret, request, name)
}
