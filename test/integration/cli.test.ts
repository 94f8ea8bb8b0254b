// The process: `--check` names the file, line:col, YAML path and problem of a bad config
// without a stack trace; a served gateway caches and stops cleanly on SIGTERM.
import t from 'tap'
import type { Test } from 'tap'
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { startOrigin, json } from '../helpers/origin.ts'
import { startRedis } from '../helpers/redis.ts'

type StoreKind = 'memory' | 'redis'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const MAIN = join(ROOT, 'src', 'main.ts')

const redis = await startRedis(t)
const dir = await mkdtemp(join(tmpdir(), 'cachegate-cli-'))
t.teardown(async () => await rm(dir, { recursive: true, force: true }))

/** The environment without variables that would override the file under test. */
function cleanEnv (): NodeJS.ProcessEnv {
  const env = { ...process.env }
  for (const name of ['REDIS_URL', 'PORT', 'HOST', 'ADMIN_PORT', 'CACHEGATE_CONFIG', 'CACHEGATE_ADMIN_TOKEN', 'LOG_LEVEL']) delete env[name]
  return env
}

async function writeConfig (name: string, text: string): Promise<string> {
  const file = join(dir, name)
  await writeFile(file, text)
  return file
}

async function check (file: string): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, '--check', '--config', file], { cwd: ROOT, env: cleanEnv() })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c: Buffer) => { stdout += c.toString() })
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)))
  return { code, stdout, stderr }
}

const badConfigs: Array<{ title: string, name: string, text: string, problem: (file: string) => string }> = [
  {
    title: 'an unknown key',
    name: 'unknown-key.yaml',
    text: 'routes:\n  - path: /api\n    origin: http://127.0.0.1:3000\n    colour: blue\n',
    problem: (file) => `${file}:4:5: routes[0].colour: unknown key`
  },
  {
    title: 'a bad duration',
    name: 'bad-duration.yaml',
    text: 'routes:\n  - origin: http://127.0.0.1:3000\n    defaultTtl: ten\n',
    problem: (file) => `${file}:3:17: routes[0].defaultTtl: expected a duration such as "10m", got "ten"`
  },
  {
    title: 'a bad URL',
    name: 'bad-url.yaml',
    text: 'routes:\n  - origin: "ftp://files.example"\n',
    problem: (file) => `${file}:2:13: routes[0].origin: expected an http(s) URL, got "ftp://files.example"`
  },
  {
    title: 'a duplicate route',
    name: 'duplicate.yaml',
    text: 'routes:\n  - path: /api\n    origin: http://127.0.0.1:3000\n  - path: /api\n    origin: http://127.0.0.1:3001\n',
    problem: (file) => `${file}:4:5: routes[1]: duplicate route: host "*" path "/api" is already routes[0]`
  }
]

t.test('--check rejects a bad config with exit 1 and names the file, line:col, path and problem', async (t) => {
  await Promise.all(badConfigs.map(async (c) => {
    const file = await writeConfig(c.name, c.text)
    const { code, stdout, stderr } = await check(file)
    t.equal(code, 1, `${c.title}: exit code 1`)
    t.ok(stderr.split('\n').some((line) => line.startsWith(c.problem(file))), `${c.title}: stderr names the place and the problem`)
    t.notMatch(stderr, /\n {4}at /, `${c.title}: no stack trace`)
    t.equal(stdout, '')
  }))
})

t.test('--check reports every problem of a file at once', async (t) => {
  const file = await writeConfig('all.yaml', [
    'routes:',
    '  - path: /api',
    '    origin: http://127.0.0.1:3000',
    '  - path: /shop',
    '    origin: http://127.0.0.1:3001',
    '    colour: blue',
    '  - path: /docs',
    '    origin: http://127.0.0.1:3002',
    '    defaultTtl: ten',
    '  - path: /img',
    '    origin: "ftp://files.example"',
    '  - path: /api',
    '    origin: http://127.0.0.1:3003',
    ''
  ].join('\n'))
  const { code, stderr } = await check(file)
  t.equal(code, 1)
  const lines = stderr.split('\n').filter((l) => l.startsWith(file))
  t.match(lines, [
    `${file}:6:5: routes[1].colour: unknown key`,
    `${file}:9:17: routes[2].defaultTtl: expected a duration such as "10m", got "ten"`,
    `${file}:11:13: routes[3].origin: expected an http(s) URL, got "ftp://files.example"`,
    `${file}:12:5: routes[4]: duplicate route: host "*" path "/api" is already routes[0]`
  ])
  t.equal(lines.length, 4)
  t.notMatch(stderr, /\n {4}at /)
})

t.test('--check accepts a good file with exit 0', async (t) => {
  const file = await writeConfig('good.yaml', 'routes:\n  - name: products\n    path: /products\n    origin: http://127.0.0.1:3000\n    defaultTtl: 10m\n')
  const { code, stdout, stderr } = await check(file)
  t.equal(code, 0)
  t.equal(stdout, `${file}: OK (1 route)\n`)
  t.equal(stderr, '')
})

/** Starts `cachegate --config <file> --port 0` and resolves with the port from its "cachegate listening" line. */
async function serve (t: Test, file: string): Promise<{ port: number, stop: () => Promise<number | null> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, '--config', file, '--port', '0'], { cwd: ROOT, env: cleanEnv() })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  const port = await new Promise<number>((resolve, reject) => {
    let buffered = ''
    const onData = (c: Buffer): void => {
      buffered += c.toString()
      for (const line of buffered.split('\n')) {
        if (!line.includes('"cachegate listening"')) continue
        child.stdout.off('data', onData)
        resolve((JSON.parse(line) as { port: number }).port)
        return
      }
    }
    child.stdout.on('data', onData)
    exited.then((code) => reject(new Error(`cachegate exited with ${String(code)} before listening:\n${stderr}`)))
  })
  child.stdout.resume()
  return {
    port,
    stop: async () => {
      child.kill('SIGTERM')
      return await exited
    }
  }
}

function behaviours (kind: StoreKind): void {
  t.test(`a served gateway on the ${kind} store caches a product and exits 0 on SIGTERM`, async (t) => {
    const origin = await startOrigin(t, json({ id: 1, name: 'Teapot' }, { 'cache-control': 'max-age=60' }))
    const config = {
      listen: { host: '127.0.0.1' },
      admin: { host: '127.0.0.1', port: 0 },
      ...(kind === 'redis' ? { redis: { url: redis.url, keyPrefix: 'cli:' } } : {}),
      routes: [{ name: 'products', path: '/products', origin: origin.url }]
    }
    const file = await writeConfig(`serve-${kind}.yaml`, JSON.stringify(config, null, 2))
    const gw = await serve(t, file)
    const get = async (): Promise<{ status: number, cacheStatus: string, body: string }> => {
      const res = await request(`http://127.0.0.1:${gw.port}/products/1`)
      return { status: res.statusCode, cacheStatus: String(res.headers['cache-status']), body: await res.body.text() }
    }
    const first = await get()
    t.equal(first.status, 200)
    t.same(JSON.parse(first.body), { id: 1, name: 'Teapot' })
    t.equal(first.cacheStatus, 'cachegate; fwd=uri-miss; fwd-status=200; stored')
    // The store write after a miss runs in the background; a request arriving before it ends
    // waits for it (fill lock) and is answered from the store as collapsed.
    const second = await get()
    t.equal(second.body, first.body)
    t.match(second.cacheStatus, /^cachegate; (hit; ttl=\d+|fwd=uri-miss(; fwd-status=200)?; collapsed)$/)
    const third = await get()
    t.match(third.cacheStatus, /^cachegate; hit; ttl=\d+$/)
    t.equal(origin.count('/products/1'), 1, 'the origin was asked once')
    t.equal(await gw.stop(), 0, 'SIGTERM: exit code 0')
  })
}

behaviours('memory')
behaviours('redis')
