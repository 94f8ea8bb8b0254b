/**
 * `npm run demo`: the sample catalog origin on :3000 and cachegate on :8080 in front of it.
 * Try:   curl -i localhost:8080/products/1     (twice: MISS, then HIT)
 *
 * `npm run demo -- purge`: a scripted run of a CMS webhook purge travelling through the gateway
 * to a fake CDN (examples/demo-purge.ts), then exit.
 */
import { spawn } from 'node:child_process'
import { startCatalogOrigin } from './catalog-origin.ts'

function interactive (): void {
  const originPort = Number(process.env.ORIGIN_PORT ?? 3000)
  const origin = startCatalogOrigin(originPort)
  const gateway = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    stdio: 'inherit',
    env: { ...process.env, ORIGIN_URL: `http://127.0.0.1:${originPort}`, LOG_LEVEL: process.env.LOG_LEVEL ?? 'info' }
  })
  process.stdout.write(`
cachegate demo: origin on http://127.0.0.1:${originPort}, gateway on http://127.0.0.1:${process.env.PORT ?? 8080}

  curl -i localhost:${process.env.PORT ?? 8080}/products/1    # Cache-Status: cachegate; fwd=uri-miss; stored
  curl -i localhost:${process.env.PORT ?? 8080}/products/1    # Cache-Status: cachegate; hit; ttl=...
  curl -i localhost:${process.env.PORT ?? 8080}/cart          # private: never stored

Ctrl-C stops both. \`npm run demo -- purge\` shows a CMS webhook purge reaching a CDN.
`)
  const stop = (): void => {
    gateway.kill('SIGTERM')
    origin.close()
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
  gateway.on('exit', (code) => {
    origin.close()
    process.exitCode = code ?? 0
  })
}

if (process.argv[2] === 'purge') {
  await import('./demo-purge.ts')
} else {
  interactive()
}
