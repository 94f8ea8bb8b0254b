/**
 * The providers that sign their requests: Akamai Fast Purge (EdgeGrid) and CloudFront
 * (SigV4). The fake APIs check the documented request and verify the signature with the
 * same libraries, from the credentials, the way the provider would.
 */
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { Hash } from '@smithy/core/serde'
import { SignatureV4 } from '@smithy/signature-v4'
import t from 'tap'
import { withGateway } from '../helpers/gateway.ts'
import { startOrigin } from '../helpers/origin.ts'
import { reply, startFakeApi, type ApiCall } from '../helpers/fake-api.ts'
import { Akamai, AKAMAI_MAX_BODY_BYTES } from '../../src/invalidation/cdn/akamai.ts'
import { catalog, purge, TOKEN } from '../integration/purge-helpers.ts'

const require = createRequire(import.meta.url)
// EdgeGrid's own signing function (the package exports only its client, which signs the same way).
const edgegridAuth = require(join(dirname(require.resolve('akamai-edgegrid')), 'src', 'auth.js')) as {
  generateAuth: (request: Record<string, unknown>, clientToken: string, clientSecret: string, accessToken: string, host: string, maxBody: number, guid: string, timestamp: string) => { headers: Record<string, string> }
}

const AKAMAI = { clientToken: 'akab-client-token', clientSecret: 'SECRET-akamai-client-secret=', accessToken: 'akab-access-token' }

function verifyEdgegrid (call: ApiCall, host: string): boolean {
  const header = String(call.headers.authorization)
  const fields = Object.fromEntries(header.replace(/^EG1-HMAC-SHA256 /, '').split(';').filter(Boolean).map((kv) => {
    const i = kv.indexOf('=')
    return [kv.slice(0, i), kv.slice(i + 1)]
  }))
  const expected = edgegridAuth.generateAuth(
    { path: call.url, method: call.method, headers: { 'Content-Type': 'application/json' }, body: call.body },
    AKAMAI.clientToken, AKAMAI.clientSecret, AKAMAI.accessToken, host, 131072, String(fields.nonce), String(fields.timestamp))
  return fields.client_token === AKAMAI.clientToken && expected.headers.Authorization === header
}

t.test('akamai: tags and URLs go to Fast Purge v3 delete (hard) or invalidate (soft) on the network, signed with EdgeGrid', async (t) => {
  const origin = await startOrigin(t, catalog())
  const api = await startFakeApi(t, reply(201, { httpStatus: 201, detail: 'Request accepted', estimatedSeconds: 5, purgeId: 'p1' }))
  const gw = await withGateway(t, {
    config: { admin: { token: TOKEN }, cdn: [{ provider: 'akamai', apiBase: api.url, network: 'staging', ...AKAMAI }], routes: [{ origin: origin.url }] }
  })
  const res = await purge(gw, { tags: ['product-1'], urls: ['https://shop.example/p/1'], prefixes: ['https://shop.example/p/'] })
  t.match(res.body.cdn, [{ state: 'done', batches: 2, refused: [/^prefixes: Akamai Fast Purge has no prefix purge/] }])
  t.same(api.calls.map((c): unknown[] => [c.method, c.url, JSON.parse(c.body)]), [
    ['POST', '/ccu/v3/delete/url/staging', { objects: ['https://shop.example/p/1'] }],
    ['POST', '/ccu/v3/delete/tag/staging', { objects: ['product-1'] }]
  ])
  for (const call of api.calls) {
    t.match(call.headers.authorization, /^EG1-HMAC-SHA256 client_token=akab-client-token;access_token=akab-access-token;timestamp=\d{8}T\d\d:\d\d:\d\d\+0000;nonce=[\w-]+;signature=/)
    // Akamai's APIs are HTTPS only: the signature covers https://<host> whatever the fake's scheme.
    t.ok(verifyEdgegrid(call, `https://127.0.0.1:${api.port}`), `the EdgeGrid signature of ${call.url} verifies`)
  }
  await purge(gw, { tags: ['a'], mode: 'soft' })
  t.equal(api.calls.at(-1)?.url, '/ccu/v3/invalidate/tag/staging', 'a soft purge is an invalidate')
  t.notMatch(gw.logLines.join(''), AKAMAI.clientSecret)
})

t.test('akamai: a tampered body does not verify (the check can fail)', async (t) => {
  const provider = new Akamai({ provider: 'akamai', name: 'a', apiBase: 'http://127.0.0.1:1', network: 'production', maxAttempts: 1, timeout: 1000, ...AKAMAI })
  const request = provider.request({ kind: 'tags', items: ['a'], soft: false })
  const call: ApiCall = { method: 'POST', url: '/ccu/v3/delete/tag/production', headers: { authorization: request.headers.authorization }, body: request.body }
  t.equal(request.url, 'http://127.0.0.1:1/ccu/v3/delete/tag/production')
  t.ok(verifyEdgegrid(call, 'https://127.0.0.1:1'))
  t.notOk(verifyEdgegrid({ ...call, body: '{"objects":["b"]}' }, 'https://127.0.0.1:1'))
})

t.test('akamai: batches keep each request body within 50,000 bytes', async (t) => {
  const provider = new Akamai({ provider: 'akamai', name: 'a', apiBase: 'http://127.0.0.1:1', network: 'production', maxAttempts: 1, timeout: 1000, ...AKAMAI })
  const urls = Array.from({ length: 256 }, (_, i) => `https://shop.example/${String(i).padStart(3, '0')}/${'x'.repeat(900)}`)
  const { batches } = provider.plan({ urls, tags: [], prefixes: [], hosts: [], all: false, soft: false })
  t.ok(batches.length > 1)
  t.equal(batches.flatMap((b) => b.items).length, 256)
  for (const b of batches) t.ok(Buffer.byteLength(JSON.stringify({ objects: b.items })) <= AKAMAI_MAX_BODY_BYTES + 20)
})

const AWS = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'SECRET/aws/secret/access/key' }

async function verifySigV4 (call: ApiCall, port: number): Promise<boolean> {
  const amzDate = String(call.headers['x-amz-date'])
  const date = new Date(`${amzDate.slice(0, 4)}-${amzDate.slice(4, 6)}-${amzDate.slice(6, 8)}T${amzDate.slice(9, 11)}:${amzDate.slice(11, 13)}:${amzDate.slice(13, 15)}Z`)
  const signer = new SignatureV4({ service: 'cloudfront', region: 'us-east-1', sha256: Hash.bind(null, 'sha256'), credentials: AWS })
  const signed = await signer.sign({
    method: call.method,
    protocol: 'http:',
    hostname: '127.0.0.1',
    port,
    path: call.url,
    query: {},
    headers: { host: String(call.headers.host), 'content-type': String(call.headers['content-type']) },
    body: call.body
  }, { signingDate: date })
  return signed.headers.authorization === call.headers.authorization
}

t.test('cloudfront: URLs and prefixes become one CreateInvalidation each, signed with SigV4; tags and hosts are refused', async (t) => {
  const origin = await startOrigin(t, catalog())
  const api = await startFakeApi(t, reply(201, '<Invalidation><Id>I1</Id><Status>InProgress</Status></Invalidation>'))
  const gw = await withGateway(t, {
    config: { admin: { token: TOKEN }, cdn: [{ provider: 'cloudfront', distribution: 'EDFDVBD6EXAMPLE', apiBase: api.url, ...AWS }], routes: [{ origin: origin.url }] }
  })
  const res = await purge(gw, { urls: ['https://shop.example/products/1?x=1', 'https://shop.example/a&b'], prefixes: ['https://shop.example/blog/'], tags: ['t'], hosts: ['shop.example'] })
  t.match(res.body.cdn, [{ state: 'done', batches: 2, refused: [/^tags: CloudFront has no tag invalidation/, /^hosts: CloudFront invalidates per distribution/] }])
  const [urls, prefixes] = api.calls
  t.equal(urls?.url, '/2020-05-31/distribution/EDFDVBD6EXAMPLE/invalidation')
  t.equal(urls?.headers['content-type'], 'application/xml')
  t.match(urls?.body, /<InvalidationBatch xmlns="http:\/\/cloudfront\.amazonaws\.com\/doc\/2020-05-31\/"><Paths><Quantity>2<\/Quantity><Items><Path>\/products\/1\?x=1<\/Path><Path>\/a&amp;b<\/Path><\/Items><\/Paths><CallerReference>[\w-]+<\/CallerReference><\/InvalidationBatch>$/)
  t.match(prefixes?.body, /<Quantity>1<\/Quantity><Items><Path>\/blog\/\*<\/Path><\/Items>/)
  for (const call of api.calls) {
    t.match(call.headers.authorization, /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/20260101\/us-east-1\/cloudfront\/aws4_request, SignedHeaders=/)
    t.ok(await verifySigV4(call, api.port), 'the SigV4 signature verifies')
    t.notOk(await verifySigV4({ ...call, body: call.body.replace('blog', 'blag').replace('products', 'producta') }, api.port), 'a changed body does not')
  }
  await purge(gw, { all: true })
  t.match(api.calls.at(-1)?.body, /<Quantity>1<\/Quantity><Items><Path>\/\*<\/Path><\/Items>/)
  t.notMatch(gw.logLines.join(''), AWS.secretAccessKey)
})

t.test('cloudfront: an error answer reports its code and message', async (t) => {
  const origin = await startOrigin(t, catalog())
  const api = await startFakeApi(t, reply(400, '<ErrorResponse><Error><Type>Sender</Type><Code>TooManyInvalidationsInProgress</Code><Message>Processing your request will cause you to exceed the maximum number of in-progress wildcard invalidations.</Message></Error></ErrorResponse>'))
  const gw = await withGateway(t, {
    config: { admin: { token: TOKEN }, cdn: [{ provider: 'cloudfront', distribution: 'E1', apiBase: api.url, ...AWS }], routes: [{ origin: origin.url }] }
  })
  const res = await purge(gw, { prefixes: ['https://shop.example/x/'] })
  t.match(res.body.cdn, [{ state: 'failed', message: /^TooManyInvalidationsInProgress: Processing your request/ }])
})
