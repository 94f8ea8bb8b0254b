/**
 * The `cdn` and `webhooks` sections of routes.yaml: the rules that span several keys (which
 * keys each provider needs and refuses, unique names, templates naming known fields) and the
 * conversion to CdnConfig / WebhookConfig. The schema of each key is in config/schema.ts.
 */
import type { Static } from '@sinclair/typebox'
import { parseDuration } from './duration.ts'
import { CdnSchema, fill, toWholeNumber, WebhookPurgeSchema, WebhookSchema } from './schema.ts'
import type { CdnConfig, WebhookConfig, WebhookKind } from './types.ts'

type CdnFile = Static<typeof CdnSchema>
type WebhookFile = Static<typeof WebhookSchema>
type Provider = CdnFile['provider']

export interface IntegrationProblem {
  message: string
  path: Array<string | number>
}

/** Keys every provider accepts. */
const COMMON = ['provider', 'name', 'maxAttempts', 'timeout'] as const

/** Per provider: keys it needs, keys it may have. Anything else is refused, naming the provider. */
const PROVIDER_KEYS: Record<Provider, { required: readonly string[], optional: readonly string[] }> = {
  cloudflare: { required: ['zone', 'token'], optional: ['apiBase'] },
  fastly: { required: ['service', 'token'], optional: ['apiBase'] },
  // Akamai API hosts are per API client (https://akab-….luna.akamaiapis.net): no default.
  akamai: { required: ['apiBase', 'clientToken', 'clientSecret', 'accessToken'], optional: ['network'] },
  cloudfront: { required: ['distribution', 'accessKeyId', 'secretAccessKey'], optional: ['sessionToken', 'apiBase'] },
  webhook: { required: ['url'], optional: ['secret'] }
}

/** The providers' public API bases. */
export const CDN_API_BASES: Partial<Record<Provider, string>> = {
  cloudflare: 'https://api.cloudflare.com/client/v4',
  fastly: 'https://api.fastly.com',
  cloudfront: 'https://cloudfront.amazonaws.com'
}

/**
 * The payload fields each CMS kind offers to purge templates (src/invalidation/webhooks/
 * extracts them). `generic` has only the fields the config maps; every kind may add more.
 */
export const WEBHOOK_FIELDS: Record<WebhookKind, readonly string[]> = {
  shopify: ['id', 'handle', 'topic', 'shop', 'type'],
  contentful: ['id', 'type', 'slug', 'locale', 'topic', 'space', 'environment'],
  sanity: ['id', 'type', 'slug', 'locale'],
  storyblok: ['id', 'slug', 'action', 'space'],
  strapi: ['id', 'documentId', 'slug', 'locale', 'type', 'event'],
  generic: []
}

const TEMPLATE_PART = /\{([^{}]*)\}/g
const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/
const FIELD_PATH = /^\$(?:\.[A-Za-z_$][A-Za-z0-9_$-]*|\[\d{1,6}\])+$/

/** The field names a template uses, or the problem with it (`product:{id}`). */
export function templateFields (template: string): { fields: string[] } | { problem: string } {
  const fields: string[] = []
  for (const m of template.matchAll(TEMPLATE_PART)) {
    const name = m[1] ?? ''
    if (!FIELD_NAME.test(name)) return { problem: `"{${name}}" is not a field reference such as "{id}"` }
    fields.push(name)
  }
  if (template.replace(TEMPLATE_PART, '').includes('{') || template.replace(TEMPLATE_PART, '').includes('}')) {
    return { problem: 'unbalanced "{" or "}"' }
  }
  if (template === '') return { problem: 'expected a non-empty template' }
  return { fields }
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Problems in `cdn` and `webhooks` that the schema cannot see; `valid` says which entries passed the schema. */
export function integrationProblems (raw: Record<string, unknown>, valid: {
  cdn: (entry: unknown) => entry is CdnFile
  webhook: (entry: unknown) => entry is WebhookFile
}): IntegrationProblem[] {
  const problems: IntegrationProblem[] = []
  const cdn = Array.isArray(raw['cdn']) ? raw['cdn'] : []
  const names = new Map<string, number>()
  cdn.forEach((entry: unknown, index) => {
    if (!valid.cdn(entry)) return
    const keys = PROVIDER_KEYS[entry.provider]
    const here = ['cdn', index]
    const allowed = [...COMMON, ...keys.required, ...keys.optional]
    for (const key of Object.keys(entry)) {
      if (!allowed.includes(key)) {
        problems.push({ path: [...here, key], message: `not a ${entry.provider} setting (${entry.provider} takes ${allowed.join(', ')})` })
      }
    }
    for (const key of keys.required) {
      const value = (entry as Record<string, unknown>)[key]
      if (value === undefined || value === '') problems.push({ path: [...here, key], message: `required for provider ${entry.provider}` })
    }
    const name = cdnName(cdn, index)
    const first = names.get(name)
    if (first !== undefined) problems.push({ path: [...here, 'name'], message: `duplicate CDN name "${name}": already cdn[${first}]` })
    else names.set(name, index)
  })

  const webhooks = Array.isArray(raw['webhooks']) ? raw['webhooks'] : []
  const hookNames = new Map<string, number>()
  webhooks.forEach((entry: unknown, index) => {
    if (!valid.webhook(entry)) return
    const here = ['webhooks', index]
    const first = hookNames.get(entry.name)
    if (first !== undefined) problems.push({ path: [...here, 'name'], message: `duplicate webhook name "${entry.name}": already webhooks[${first}]` })
    else hookNames.set(entry.name, index)
    if (entry.secret === '') problems.push({ path: [...here, 'secret'], message: 'expected a non-empty secret (an unsigned webhook would let anyone purge)' })
    if (entry.header !== undefined && entry.kind !== 'strapi' && entry.kind !== 'generic') {
      problems.push({ path: [...here, 'header'], message: `only strapi and generic webhooks take a header (${entry.kind} signs in its own header)` })
    }
    const fields = new Set(WEBHOOK_FIELDS[entry.kind])
    for (const [field, path] of Object.entries(entry.fields ?? {})) {
      if (!FIELD_NAME.test(field)) problems.push({ path: [...here, 'fields', field], message: 'expected a field name of letters, digits and "_"' })
      else if (!FIELD_PATH.test(path)) problems.push({ path: [...here, 'fields', field], message: `expected a path such as "$.data.id" or "$.items[0].id", got ${JSON.stringify(path)}` })
      fields.add(field)
    }
    if (entry.kind === 'generic' && Object.keys(entry.fields ?? {}).length === 0) {
      problems.push({ path: [...here, 'fields'], message: 'required for kind generic: map field names to payload paths, such as {id: "$.data.id"}' })
    }
    const purge = fill(WebhookPurgeSchema, entry.purge)
    const lists = ['tags', 'urls', 'prefixes'] as const
    if (lists.every((list) => purge[list].length === 0)) {
      problems.push({ path: [...here, 'purge'], message: 'expected at least one template in tags, urls or prefixes' })
    }
    for (const list of lists) {
      purge[list].forEach((template, i) => {
        const parsed = templateFields(template)
        const at = [...here, 'purge', list, i]
        if ('problem' in parsed) {
          problems.push({ path: at, message: parsed.problem })
          return
        }
        const unknown = parsed.fields.find((f) => !fields.has(f))
        if (unknown !== undefined) {
          const known = [...fields]
          problems.push({ path: at, message: `unknown field "{${unknown}}" for kind ${entry.kind} (known: ${known.length === 0 ? 'none; add it under fields' : known.join(', ')})` })
        }
        if (list !== 'tags' && !/^https?:\/\/[^/{}]+\//.test(template)) {
          problems.push({ path: at, message: 'expected an absolute URL template with a literal host, such as "https://shop.example/products/{handle}"' })
        }
      })
    }
  })
  return problems
}

function cdnName (entries: readonly unknown[], index: number): string {
  const entry = entries[index]
  if (!isRecord(entry)) return `cdn-${index}`
  if (typeof entry['name'] === 'string') return entry['name']
  const provider = String(entry['provider'])
  const same = entries.filter((e) => isRecord(e) && e['provider'] === provider && e['name'] === undefined)
  return same.length > 1 ? `${provider}-${index}` : provider
}

function ms (value: number | string): number {
  const result = parseDuration(value)
  if (result === undefined) throw new Error('unreachable: validated duration did not parse')
  return result
}

function trimSlash (url: string): string {
  return url.replace(/\/+$/, '')
}

export function buildCdn (entries: readonly CdnFile[]): CdnConfig[] {
  return entries.map((file, index) => {
    const entry = fill(CdnSchema, file)
    const common = {
      name: cdnName(entries, index),
      apiBase: trimSlash(entry.apiBase ?? entry.url ?? CDN_API_BASES[entry.provider] ?? ''),
      maxAttempts: toWholeNumber(entry.maxAttempts),
      timeout: ms(entry.timeout)
    }
    const text = (value: string | undefined): string => value ?? ''
    switch (entry.provider) {
      case 'cloudflare': return { ...common, provider: 'cloudflare', zone: text(entry.zone), token: text(entry.token) }
      case 'fastly': return { ...common, provider: 'fastly', service: text(entry.service), token: text(entry.token) }
      case 'akamai': return {
        ...common,
        provider: 'akamai',
        clientToken: text(entry.clientToken),
        clientSecret: text(entry.clientSecret),
        accessToken: text(entry.accessToken),
        network: entry.network ?? 'production'
      }
      case 'cloudfront': return {
        ...common,
        provider: 'cloudfront',
        distribution: text(entry.distribution),
        accessKeyId: text(entry.accessKeyId),
        secretAccessKey: text(entry.secretAccessKey),
        sessionToken: entry.sessionToken === '' ? undefined : entry.sessionToken
      }
      case 'webhook': return { ...common, provider: 'webhook', secret: entry.secret === '' ? undefined : entry.secret }
    }
    throw new Error('unreachable: validated provider')
  })
}

export function buildWebhooks (entries: readonly WebhookFile[]): WebhookConfig[] {
  return entries.map((file) => {
    const entry = fill(WebhookSchema, file)
    const purge = fill(WebhookPurgeSchema, entry.purge)
    return {
      name: entry.name,
      kind: entry.kind,
      secret: entry.secret,
      header: entry.header?.toLowerCase(),
      tolerance: ms(entry.tolerance),
      fields: { ...entry.fields },
      purge: { tags: [...purge.tags], urls: [...purge.urls], prefixes: [...purge.prefixes], mode: purge.mode }
    }
  })
}
