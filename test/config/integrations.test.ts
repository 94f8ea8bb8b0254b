/* eslint-disable no-template-curly-in-string -- literal ${VAR} references in YAML text */
import t from 'tap'
import type { Test } from 'tap'
import { ConfigError, parseConfig } from '../../src/config/load.ts'
import type { GatewayConfig } from '../../src/config/types.ts'

const yaml = (...lines: string[]): string => lines.join('\n') + '\n'
const ROUTES = ['routes:', '  - origin: http://127.0.0.1:3000']

function problemsOf (t: Test, text: string, env: Record<string, string> = {}): string[] {
  try {
    parseConfig(text, 'routes.yaml', env)
  } catch (error) {
    if (error instanceof ConfigError) return error.problems
    throw error
  }
  t.fail('the configuration was accepted')
  return []
}

const load = (text: string, env: Record<string, string> = {}): GatewayConfig => parseConfig(text, 'routes.yaml', env)

t.test('a file without cdn or webhooks has neither in its config', async (t) => {
  const config = load(yaml(...ROUTES))
  t.equal(config.cdn, undefined)
  t.equal(config.webhooks, undefined)
})

t.test('cdn entries get their provider\'s API base, names, attempts and timeout', async (t) => {
  const config = load(yaml(
    'cdn:',
    '  - provider: cloudflare',
    '    zone: ${CF_ZONE}',
    '    token: ${CF_TOKEN}',
    '  - provider: fastly',
    '    service: svc',
    '    token: ft',
    '    apiBase: http://127.0.0.1:9999/',
    '    maxAttempts: 3',
    '    timeout: 2s',
    '  - provider: akamai',
    '    name: edge',
    '    apiBase: https://akab-x.luna.akamaiapis.net',
    '    clientToken: ct',
    '    clientSecret: cs',
    '    accessToken: at',
    '  - provider: cloudfront',
    '    distribution: E123',
    '    accessKeyId: AKIA',
    '    secretAccessKey: secret',
    '  - provider: webhook',
    '    url: https://hooks.example/purge',
    ...ROUTES
  ), { CF_ZONE: 'zone-1', CF_TOKEN: 'tok' })
  t.strictSame(config.cdn, [
    { name: 'cloudflare', apiBase: 'https://api.cloudflare.com/client/v4', maxAttempts: 8, timeout: 10_000, provider: 'cloudflare', zone: 'zone-1', token: 'tok' },
    { name: 'fastly', apiBase: 'http://127.0.0.1:9999', maxAttempts: 3, timeout: 2000, provider: 'fastly', service: 'svc', token: 'ft' },
    { name: 'edge', apiBase: 'https://akab-x.luna.akamaiapis.net', maxAttempts: 8, timeout: 10_000, provider: 'akamai', clientToken: 'ct', clientSecret: 'cs', accessToken: 'at', network: 'production' },
    { name: 'cloudfront', apiBase: 'https://cloudfront.amazonaws.com', maxAttempts: 8, timeout: 10_000, provider: 'cloudfront', distribution: 'E123', accessKeyId: 'AKIA', secretAccessKey: 'secret', sessionToken: undefined },
    { name: 'webhook', apiBase: 'https://hooks.example/purge', maxAttempts: 8, timeout: 10_000, provider: 'webhook', secret: undefined }
  ])
})

t.test('two unnamed forwards to the same provider are told apart by index; a repeated name is refused', async (t) => {
  const config = load(yaml('cdn:', '  - {provider: fastly, service: a, token: t}', '  - {provider: fastly, service: b, token: t}', ...ROUTES))
  t.strictSame(config.cdn?.map((c) => c.name), ['fastly-0', 'fastly-1'])
  t.match(problemsOf(t, yaml('cdn:', '  - {provider: fastly, name: f, service: a, token: t}', '  - {provider: fastly, name: f, service: b, token: t}', ...ROUTES)),
    [/^routes\.yaml:3:\d+: cdn\[1\]\.name: duplicate CDN name "f": already cdn\[0\]$/])
})

t.test('a cdn entry names the provider\'s missing and foreign keys precisely', async (t) => {
  t.strictSame(problemsOf(t, yaml('cdn:', '  - provider: cloudflare', '    token: x', '    service: s', ...ROUTES)), [
    'routes.yaml:2:5: cdn[0].zone: required for provider cloudflare',
    'routes.yaml:4:14: cdn[0].service: not a cloudflare setting (cloudflare takes provider, name, maxAttempts, timeout, zone, token, apiBase)'
  ])
  t.match(problemsOf(t, yaml('cdn:', '  - provider: akamai', '    clientToken: a', '    clientSecret: b', '    accessToken: c', ...ROUTES)),
    [/cdn\[0\]\.apiBase: required for provider akamai/])
  t.match(problemsOf(t, yaml('cdn:', '  - {provider: webhook}', ...ROUTES)), [/cdn\[0\]\.url: required for provider webhook/])
})

t.test('an unknown provider, a bad API base and an empty credential from ${VAR} are refused', async (t) => {
  t.match(problemsOf(t, yaml('cdn:', '  - {provider: varnish, token: x}', ...ROUTES)),
    [/cdn\[0\]\.provider: expected one of cloudflare, fastly, akamai, cloudfront, webhook, got "varnish"/])
  t.match(problemsOf(t, yaml('cdn:', '  - {provider: fastly, service: s, token: t, apiBase: "ftp://x"}', ...ROUTES)),
    [/cdn\[0\]\.apiBase: expected an http\(s\) URL, got "ftp:\/\/x"/])
  t.match(problemsOf(t, yaml('cdn:', '  - {provider: fastly, service: s, token: "${FASTLY_TOKEN:-}"}', ...ROUTES)),
    [/cdn\[0\]\.token: required for provider fastly/])
  t.match(problemsOf(t, yaml('cdn:', '  - {provider: fastly, service: s, token: t, maxAttempts: 0}', ...ROUTES)),
    [/cdn\[0\]\.maxAttempts: expected a whole number of at least 1, got 0/])
})

t.test('a cdn error message never shows a credential', async (t) => {
  const problems = problemsOf(t, yaml('cdn:', '  - {provider: cloudflare, token: sekrit-token-value, zone: z, apiBase: "https://user:sekrit@x/"}', ...ROUTES))
  t.ok(problems.length > 0)
  for (const p of problems) t.notMatch(p, 'sekrit')
})

t.test('webhooks are loaded with their purge templates and defaults', async (t) => {
  const config = load(yaml(
    'webhooks:',
    '  - name: shop',
    '    kind: shopify',
    '    secret: ${SHOPIFY_SECRET}',
    '    purge:',
    '      tags: ["product:{id}", "handle:{handle}"]',
    '      mode: soft',
    '  - name: api',
    '    kind: generic',
    '    secret: s',
    '    header: X-Signature',
    '    tolerance: 1m',
    '    fields: {id: "$.data.id", path: "$.data.paths[0]"}',
    '    purge:',
    '      urls: ["https://shop.example/items/{id}"]',
    ...ROUTES
  ), { SHOPIFY_SECRET: 'shh' })
  t.strictSame(config.webhooks, [
    { name: 'shop', kind: 'shopify', secret: 'shh', header: undefined, tolerance: 300_000, fields: {}, purge: { tags: ['product:{id}', 'handle:{handle}'], urls: [], prefixes: [], mode: 'soft' } },
    { name: 'api', kind: 'generic', secret: 's', header: 'x-signature', tolerance: 60_000, fields: { id: '$.data.id', path: '$.data.paths[0]' }, purge: { tags: [], urls: ['https://shop.example/items/{id}'], prefixes: [], mode: 'hard' } }
  ])
})

t.test('webhook templates, fields, kinds, names and secrets are checked', async (t) => {
  const hook = (...lines: string[]): string => yaml('webhooks:', '  - name: shop', ...lines, ...ROUTES)
  t.match(problemsOf(t, hook('    kind: shopify', '    secret: s', '    purge: {tags: ["product:{sku}"]}')),
    [/webhooks\[0\]\.purge\.tags\[0\]: unknown field "\{sku\}" for kind shopify \(known: id, handle, topic, shop, type\)/])
  t.match(problemsOf(t, hook('    kind: shopify', '    secret: s', '    purge: {tags: ["product:{id"]}')),
    [/webhooks\[0\]\.purge\.tags\[0\]: unbalanced "\{" or "\}"/])
  t.match(problemsOf(t, hook('    kind: shopify', '    secret: s', '    purge: {tags: ["product:{a.b}"]}')),
    [/"\{a\.b\}" is not a field reference/])
  t.match(problemsOf(t, hook('    kind: shopify', '    secret: s', '    purge: {urls: ["/products/{handle}"]}')),
    [/purge\.urls\[0\]: expected an absolute URL template with a literal host/])
  t.match(problemsOf(t, hook('    kind: shopify', '    secret: s', '    purge: {mode: soft}')),
    [/webhooks\[0\]\.purge: expected at least one template in tags, urls or prefixes/])
  t.match(problemsOf(t, hook('    kind: wordpress', '    secret: s', '    purge: {tags: [x]}')),
    [/webhooks\[0\]\.kind: expected one of shopify, contentful, sanity, storyblok, strapi, generic, got "wordpress"/])
  t.match(problemsOf(t, hook('    kind: shopify', '    secret: ""', '    purge: {tags: [x]}')),
    [/webhooks\[0\]\.secret: expected a non-empty secret/])
  t.match(problemsOf(t, hook('    kind: shopify', '    purge: {tags: [x]}')), [/webhooks\[0\]\.secret: required key is missing/])
  t.match(problemsOf(t, hook('    kind: generic', '    secret: s', '    purge: {tags: [x]}')), [/webhooks\[0\]\.fields: required for kind generic/])
  t.match(problemsOf(t, hook('    kind: generic', '    secret: s', '    fields: {id: "data.id"}', '    purge: {tags: ["{id}"]}')),
    [/webhooks\[0\]\.fields\.id: expected a path such as "\$\.data\.id"/])
  t.match(problemsOf(t, hook('    kind: sanity', '    secret: s', '    header: x-sig', '    purge: {tags: [x]}')),
    [/webhooks\[0\]\.header: only strapi and generic webhooks take a header/])
  t.match(problemsOf(t, yaml('webhooks:', '  - {name: a, kind: strapi, secret: s, purge: {tags: [x]}}', '  - {name: a, kind: strapi, secret: s, purge: {tags: [x]}}', ...ROUTES)),
    [/webhooks\[1\]\.name: duplicate webhook name "a": already webhooks\[0\]/])
  t.match(problemsOf(t, hook('    kind: shopify', '    secret: s', '    purge: {tags: [x], mode: gentle}')),
    [/webhooks\[0\]\.purge\.mode: expected one of soft, hard, revalidate, got "gentle"/])
})
