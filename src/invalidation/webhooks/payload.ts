/**
 * From a CMS payload to a purge: the payload is parsed without losing large integer ids
 * (Shopify's ids pass 2^53), each kind names where its fields are (config/integrations.ts
 * WEBHOOK_FIELDS lists them), `fields` from the config add or replace fields by path, and the
 * purge templates are filled from them. Pure.
 *
 * A template is filled once per combination of its fields' values (a localized slug has one
 * value per locale). A template whose field is absent or empty is skipped and reported, never
 * filled with "" (`https://shop.example/products/{handle}` as a prefix with an empty handle
 * would purge every product). Values go into URL templates percent-encoded, segment by
 * segment, and a value with "." or ".." segments is refused: a payload can name a page under
 * the template's host and path, never another one. Every filled item then passes the purge
 * API's own checks.
 */
import type { WebhookConfig, WebhookKind } from '../../config/types.ts'
import { parsePurgeRequest, PURGE_LIMITS, type PurgeRequest } from '../purge.ts'

export type Headers = Readonly<Record<string, string | string[] | undefined>>
export type Fields = ReadonlyMap<string, readonly string[]>

export interface Skipped {
  template: string
  reason: string
}

export interface WebhookPurge {
  purge: PurgeRequest
  skipped: Skipped[]
}

const NUMBER = /-?\d+(\.\d+)?([eE][+-]?\d+)?/y

/**
 * JSON.parse, with integers beyond Number.MAX_SAFE_INTEGER kept as their digits (a string):
 * ids are identifiers, and 788032119674292922 must not become 788032119674292900.
 * Throws SyntaxError on malformed JSON, as JSON.parse does.
 */
export function parsePayload (text: string): unknown {
  let out = ''
  let last = 0
  let i = 0
  while (i < text.length) {
    const c = text.charCodeAt(i)
    if (c === 0x22) { // a string: skip to its closing quote
      i++
      while (i < text.length && text.charCodeAt(i) !== 0x22) i += text.charCodeAt(i) === 0x5c ? 2 : 1
      i++
      continue
    }
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      NUMBER.lastIndex = i
      const m = NUMBER.exec(text)
      const token = m?.[0] ?? text[i] ?? ''
      if (m !== null && m[1] === undefined && m[2] === undefined && !Number.isSafeInteger(Number(token))) {
        out += text.slice(last, i) + `"${token}"`
        last = i + token.length
      }
      i += token.length
      continue
    }
    i++
  }
  return JSON.parse(last === 0 ? text : out + text.slice(last))
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** An own property only: `__proto__` or `constructor` in a path reads nothing. */
function own (value: unknown, key: string | number): unknown {
  if (typeof key === 'number') return Array.isArray(value) ? value[key] : undefined
  return isRecord(value) && Object.hasOwn(value, key) ? value[key] : undefined
}

function at (value: unknown, ...path: Array<string | number>): unknown {
  let v = value
  for (const key of path) v = own(v, key)
  return v
}

/** Scalar values as strings: non-empty strings and finite numbers; lists of them; nothing else. */
function scalars (value: unknown): string[] {
  if (typeof value === 'string') return value === '' ? [] : [value]
  if (typeof value === 'number') return Number.isFinite(value) ? [String(value)] : []
  if (Array.isArray(value)) return value.flatMap((v: unknown) => typeof v === 'string' || typeof v === 'number' ? scalars(v) : [])
  return []
}

/** A config path such as `$.data.items[0].id` (checked at load time) as keys. */
function pathKeys (path: string): Array<string | number> {
  const keys: Array<string | number> = []
  for (const m of path.slice(1).matchAll(/\.([^.[]+)|\[(\d+)\]/g)) keys.push(m[1] ?? Number(m[2]))
  return keys
}

/** Values of a localized Contentful field (`{"en-US": "x"}`) or a plain one. */
function localized (value: unknown): string[] {
  return isRecord(value) ? Object.values(value).flatMap(scalars) : scalars(value)
}

function headerValue (headers: Headers, name: string): string[] {
  const v = headers[name]
  return typeof v === 'string' ? scalars(v.trim()) : []
}

/**
 * The fields each kind offers, from where its CMS documents them:
 * - shopify: the resource's `id` and `handle`; `topic` and `shop` from X-Shopify-Topic and
 *   X-Shopify-Shop-Domain; `type` the topic's resource (`products` of `products/update`).
 *   https://shopify.dev/docs/apps/build/webhooks/delivery-structure
 * - contentful: `sys.id`, the content type id (else `sys.type`), `fields.slug` (every locale's),
 *   the locales of `fields.slug` (else of every field), X-Contentful-Topic, space, environment.
 *   https://www.contentful.com/developers/docs/webhooks/headers/
 * - sanity: `_id`, `_type`, `slug.current`, `language` or `locale` (the payload is the document,
 *   or the webhook's projection of it). https://www.sanity.io/docs/webhooks
 * - storyblok: `story_id`, `full_slug`, `action`, `space_id`. https://www.storyblok.com/docs/concepts/webhooks
 * - strapi: `entry.id`, `entry.documentId`, `entry.slug`, `entry.locale`, `model`, `event`.
 *   https://docs.strapi.io/cms/backend-customization/webhooks#payloads
 */
function kindFields (kind: WebhookKind, p: unknown, headers: Headers): Record<string, string[]> {
  switch (kind) {
    case 'shopify': {
      const topic = headerValue(headers, 'x-shopify-topic')
      return {
        id: scalars(at(p, 'id')),
        handle: scalars(at(p, 'handle')),
        topic,
        shop: headerValue(headers, 'x-shopify-shop-domain'),
        type: topic.map((t) => t.split('/')[0] ?? '').filter((t) => t !== '')
      }
    }
    case 'contentful': {
      const slug = at(p, 'fields', 'slug')
      const fields = at(p, 'fields')
      const locales = isRecord(slug)
        ? Object.keys(slug)
        : [...new Set(isRecord(fields) ? Object.values(fields).flatMap((f) => isRecord(f) ? Object.keys(f) : []) : [])]
      const contentType = scalars(at(p, 'sys', 'contentType', 'sys', 'id'))
      return {
        id: scalars(at(p, 'sys', 'id')),
        type: contentType.length > 0 ? contentType : scalars(at(p, 'sys', 'type')),
        slug: [...new Set(localized(slug))],
        locale: locales.filter((l) => l !== ''),
        topic: headerValue(headers, 'x-contentful-topic'),
        space: scalars(at(p, 'sys', 'space', 'sys', 'id')),
        environment: scalars(at(p, 'sys', 'environment', 'sys', 'id'))
      }
    }
    case 'sanity': {
      const slug = at(p, 'slug')
      const language = scalars(at(p, 'language'))
      return {
        id: scalars(at(p, '_id')),
        type: scalars(at(p, '_type')),
        slug: isRecord(slug) ? scalars(slug['current']) : scalars(slug),
        locale: language.length > 0 ? language : scalars(at(p, 'locale'))
      }
    }
    case 'storyblok':
      return {
        id: scalars(at(p, 'story_id')),
        slug: scalars(at(p, 'full_slug')),
        action: scalars(at(p, 'action')),
        space: scalars(at(p, 'space_id'))
      }
    case 'strapi':
      return {
        id: scalars(at(p, 'entry', 'id')),
        documentId: scalars(at(p, 'entry', 'documentId')),
        slug: scalars(at(p, 'entry', 'slug')),
        locale: scalars(at(p, 'entry', 'locale')),
        type: scalars(at(p, 'model')),
        event: scalars(at(p, 'event'))
      }
    case 'generic':
      return {}
  }
}

/** Every field of a payload: the kind's, then the config's paths (which win on a name clash). */
export function payloadFields (hook: Pick<WebhookConfig, 'kind' | 'fields'>, payload: unknown, headers: Headers): Fields {
  const out = new Map<string, string[]>(Object.entries(kindFields(hook.kind, payload, headers)))
  for (const [name, path] of Object.entries(hook.fields)) out.set(name, scalars(at(payload, ...pathKeys(path))))
  return out
}

const TEMPLATE_PART = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g

/** A value as it goes into a URL template: each segment percent-encoded, "/" kept; undefined if it has dot segments. */
function urlValue (value: string): string | undefined {
  const segments = value.split('/')
  if (segments.some((s) => s === '.' || s === '..')) return undefined
  return segments.map((s) => encodeURIComponent(s)).join('/')
}

type List = 'tags' | 'urls' | 'prefixes'

/** One template filled with every combination of its fields' values (at most `room`). */
function fill (template: string, list: List, fields: Fields, room: number): { items: string[] } | { problem: string } {
  const names = [...new Set([...template.matchAll(TEMPLATE_PART)].map((m) => m[1] ?? ''))]
  const values: Array<readonly string[]> = []
  for (const name of names) {
    const v = fields.get(name) ?? []
    if (v.length === 0) return { problem: `the payload has no field "${name}"` }
    if (list !== 'tags') {
      const encoded = v.map(urlValue)
      if (encoded.includes(undefined)) return { problem: `field "${name}" has "." or ".." path segments` }
      values.push(encoded as string[])
    } else {
      values.push(v)
    }
  }
  let combos: Array<Map<string, string>> = [new Map<string, string>()]
  names.forEach((name, i) => {
    combos = combos.flatMap((c) => (values[i] ?? []).map((v) => new Map<string, string>(c).set(name, v))).slice(0, room + 1)
  })
  const items = combos.map((c) => template.replace(TEMPLATE_PART, (_all, name: string) => c.get(name) ?? ''))
  return { items }
}

/** The purge a payload asks for under this webhook's templates, and the templates (or items) left out. */
export function webhookPurge (hook: Pick<WebhookConfig, 'purge'>, fields: Fields): WebhookPurge {
  const purge: PurgeRequest = { urls: [], prefixes: [], tags: [], hosts: [], all: false, mode: hook.purge.mode }
  const skipped: Skipped[] = []
  for (const list of ['tags', 'urls', 'prefixes'] as const) {
    const seen = new Set<string>()
    for (const template of hook.purge[list]) {
      const room = PURGE_LIMITS.maxItems - purge[list].length
      const filled = fill(template, list, fields, room)
      if ('problem' in filled) {
        skipped.push({ template, reason: filled.problem })
        continue
      }
      for (const item of filled.items) {
        if (seen.has(item)) continue
        if (purge[list].length >= PURGE_LIMITS.maxItems) {
          skipped.push({ template, reason: `more than ${PURGE_LIMITS.maxItems} ${list}: the rest were left out` })
          break
        }
        const checked = parsePurgeRequest({ [list]: [item] })
        if (!checked.ok) {
          skipped.push({ template, reason: checked.message.replace(/^\w+\[0\]: /, '') })
          continue
        }
        seen.add(item)
        purge[list].push(item)
      }
    }
  }
  return { purge, skipped }
}

/** Whether a purge selects anything. */
export function isEmptyPurge (p: PurgeRequest): boolean {
  return p.tags.length === 0 && p.urls.length === 0 && p.prefixes.length === 0
}
