// The admin token policy: the process refuses to start, check or reload with a short token or
// a known placeholder, naming where the token came from; a random token of 16+ characters passes.
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { adminTokenProblem } from '../../src/config/admin-token.ts'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const MAIN = join(ROOT, 'src', 'main.ts')
const GOOD = '3f9c2a7be41d08c6a5e2f1b7c9d04e8a'

t.test('placeholders are refused whatever their case and separators; short tokens are refused with their length', async (t) => {
  const rows: Array<{ token: string, problem: RegExp | undefined }> = [
    { token: 'change-me', problem: /^"change-me" is a placeholder/ },
    { token: 'CHANGE_ME', problem: /placeholder/ },
    { token: 'changeme', problem: /placeholder/ },
    { token: 'secret', problem: /placeholder/ },
    { token: 'token', problem: /placeholder/ },
    { token: 'admin', problem: /placeholder/ },
    { token: 'password', problem: /placeholder/ },
    { token: 'your-token-here', problem: /placeholder/ },
    { token: 'xxxxxxxxxxxxxxxxxxxxxxxx', problem: /placeholder/ },
    { token: '12345678901234567890', problem: /placeholder/ },
    { token: 'short-but-random', problem: undefined },
    { token: 'k9-Qz', problem: /^too short \(5 characters; at least 16\)/ },
    { token: 'fifteen-chars-x', problem: /too short \(15 characters/ },
    { token: GOOD, problem: undefined }
  ]
  for (const row of rows) {
    const problem = adminTokenProblem(row.token)
    if (row.problem === undefined) t.equal(problem, undefined, `${row.token} is accepted`)
    else t.match(problem, row.problem, `${row.token} is refused`)
    if (problem !== undefined) t.match(problem, /openssl rand -hex 32/, 'the message says how to make one')
  }
})

const dir = await mkdtemp(join(tmpdir(), 'cachegate-token-'))
t.teardown(async () => await rm(dir, { recursive: true, force: true }))

async function run (args: string[], env: Record<string, string>): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const clean = { ...process.env }
  for (const name of ['REDIS_URL', 'PORT', 'HOST', 'ADMIN_PORT', 'CACHEGATE_CONFIG', 'CACHEGATE_ADMIN_TOKEN', 'LOG_LEVEL']) delete clean[name]
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c: Buffer) => { stdout += c.toString() })
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)))
  return { code, stdout, stderr }
}

async function config (name: string, token: string | undefined): Promise<string> {
  const file = join(dir, name)
  await writeFile(file, `admin: { host: 127.0.0.1, port: 0${token === undefined ? '' : `, token: "${token}"`} }\nlisten: { host: 127.0.0.1, port: 0 }\nroutes:\n  - origin: http://127.0.0.1:9\n`)
  return file
}

t.test('--check refuses a placeholder admin.token in the file with exit 1, naming the file and the key', async (t) => {
  const file = await config('placeholder.yaml', 'change-me')
  const { code, stdout, stderr } = await run(['--check', '--config', file], {})
  t.equal(code, 1)
  t.equal(stdout, '')
  t.match(stderr, `${file}: admin.token: "change-me" is a placeholder, not a secret`)
  t.notMatch(stderr, /\n {4}at /, 'no stack trace')
})

t.test('--check refuses a short CACHEGATE_ADMIN_TOKEN, naming the variable and not echoing the token', async (t) => {
  const file = await config('none.yaml', undefined)
  const { code, stderr } = await run(['--check', '--config', file], { CACHEGATE_ADMIN_TOKEN: 'k9-Qz-7' })
  t.equal(code, 1)
  t.match(stderr, 'CACHEGATE_ADMIN_TOKEN: too short (7 characters; at least 16)')
  t.notMatch(stderr, /k9-Qz-7/)
})

t.test('the gateway does not start with the compose default token, before opening any port', async (t) => {
  const file = await config('start.yaml', undefined)
  const { code, stdout, stderr } = await run(['--config', file], { CACHEGATE_ADMIN_TOKEN: 'change-me' })
  t.equal(code, 1)
  t.match(stderr, /CACHEGATE_ADMIN_TOKEN: "change-me" is a placeholder/)
  t.notMatch(stdout, /listening/)
})

t.test('a random token of 16+ characters, or none at all, passes --check', async (t) => {
  const withToken = await run(['--check', '--config', await config('good.yaml', GOOD)], {})
  t.equal(withToken.code, 0, withToken.stderr)
  const fromEnv = await run(['--check', '--config', await config('env.yaml', 'change-me')], { CACHEGATE_ADMIN_TOKEN: GOOD })
  t.equal(fromEnv.code, 0, 'the environment overrides the file, and its token is the one checked')
  const none = await run(['--check', '--config', await config('no-token.yaml', undefined)], {})
  t.equal(none.code, 0, 'no token: the admin API answers 503 and nothing is guessable')
})
