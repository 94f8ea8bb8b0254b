/**
 * `npm run demo -- purge`: a purge travelling from a CMS webhook through the gateway to the CDN
 * in front of it, end to end on this machine, then exit.
 *
 *   fake Shopify ──POST /webhooks/shop (signed)──▶ cachegate admin ──▶ purge its cache
 *                                                               └──▶ forward to the fake Cloudflare API
 *
 * Everything runs on free loopback ports: the sample catalog origin, a fake Cloudflare API that
 * prints the purge requests it receives, and cachegate (src/main.ts) with a config written to a
 * temporary file. Nothing leaves the machine.
 */
import { spawn } from 'node:child_process'
import { createHmac } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startCatalogOrigin } from './catalog-origin.ts'

const SECRET = 'demo-shopify-secret'
const TOKEN = 'demo-admin-token'

async function listen (server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

async function freePort (): Promise<number> {
  const s = createServer()
  const port = await listen(s)
  await new Promise((resolve) => s.close(resolve))
  return port
}

function say (text: string): void {
  process.stdout.write(`\n\u001b[1m${text}\u001b[0m\n`)
}

async function main (): Promise<void> {
  const origin = startCatalogOrigin(0)
  await new Promise<void>((resolve) => { if (origin.listening) resolve(); else origin.once('listening', () => resolve()) })
  const originPort = (origin.address() as AddressInfo).port

  // The fake CDN: Cloudflare's purge_cache endpoint, printing what it receives.
  const cdn = createServer((req, res) => {
    let body = ''
    req.on('data', (c: Buffer) => { body += c.toString() })
    req.on('end', () => {
      process.stdout.write(`  fake Cloudflare got: ${req.method ?? ''} ${req.url ?? ''} ${body}\n`)
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ success: true, errors: [], messages: [], result: { id: 'demo' } }))
    })
  })
  const cdnPort = await listen(cdn)

  const port = await freePort()
  const adminPort = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'cachegate-demo-'))
  const configFile = join(dir, 'routes.yaml')
  writeFileSync(configFile, `
listen: { host: 127.0.0.1, port: ${port} }
admin: { host: 127.0.0.1, port: ${adminPort}, token: ${TOKEN} }
cdn:
  - provider: cloudflare
    zone: demo-zone
    token: demo-cloudflare-token
    apiBase: http://127.0.0.1:${cdnPort}/client/v4
webhooks:
  - name: shop
    kind: shopify
    secret: ${SECRET}
    purge: { tags: ["product-{id}"], mode: hard }
routes:
  - origin: http://127.0.0.1:${originPort}
    tagHeader: cache-tag
`)
  const gateway = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', '--config', configFile], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, LOG_LEVEL: 'warn' }
  })
  const base = `http://127.0.0.1:${port}`
  const stop = (): void => {
    gateway.kill('SIGTERM')
    origin.close()
    cdn.close()
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    // Wait until the gateway answers (it compiles nothing; tsx starts in about a second).
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`http://127.0.0.1:${adminPort}/healthz`)).ok) break
      } catch {}
      if (i > 100) throw new Error('the gateway did not start')
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    const show = async (label: string): Promise<'hit' | 'miss'> => {
      const res = await fetch(`${base}/products/1`)
      await res.text()
      const status = res.headers.get('cache-status') ?? ''
      process.stdout.write(`  GET /products/1 -> ${res.status}  Cache-Status: ${status}  Cache-Tag: ${res.headers.get('cache-tag') ?? ''}  (${label})\n`)
      return status.startsWith('cachegate; hit') ? 'hit' : 'miss'
    }
    say('1. A client reads a product twice: a miss, then a hit. The Cache-Tag field is for the CDN in front.')
    await show('first read')
    await show('second read')

    say('2. Shopify says product 1 changed: a webhook signed with X-Shopify-Hmac-Sha256.')
    const payload = JSON.stringify({ id: 1, handle: 'kettle', title: 'Kettle, now blue' })
    const signature = createHmac('sha256', SECRET).update(payload).digest('base64')
    const hook = await fetch(`http://127.0.0.1:${adminPort}/webhooks/shop`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-shopify-hmac-sha256': signature, 'x-shopify-topic': 'products/update' },
      body: payload
    })
    process.stdout.write(`  POST /webhooks/shop -> ${hook.status} ${await hook.text()}\n`)

    say('3. The gateway purged its own copy first, then forwarded the same tag purge to the CDN (above).')
    // The webhook answers 202 as soon as the purge starts: read until the purge has taken effect.
    for (let i = 0; i < 50 && await show(i === 0 ? 'right after the webhook' : 'again') === 'hit'; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50))
    }

    say('4. A webhook with a wrong signature is refused.')
    const forged = await fetch(`http://127.0.0.1:${adminPort}/webhooks/shop`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-shopify-hmac-sha256': 'Zm9yZ2Vk' },
      body: payload
    })
    process.stdout.write(`  POST /webhooks/shop (forged) -> ${forged.status} ${await forged.text()}\n\n`)
  } finally {
    stop()
  }
}

await main()
