/**
 * Runs the http-tests cache-tests suite (npm package http-cache-tests) against a running
 * cachegate process and classifies the results the way cache-tests.fyi does.
 *
 * Three processes per configuration, all on ports the OS picks:
 *   1. the suite's origin server (http-cache-tests/server/server.mjs), which answers each
 *      test's requests as the test configured them and records what it received;
 *   2. cachegate itself (`node --import tsx src/main.ts --config FILE`), exactly as an operator
 *      starts it, with ORIGIN_URL pointing at the suite's server;
 *   3. the suite's own command-line client (http-cache-tests/cli.mjs), which sends every test
 *      through the gateway and prints the raw results as JSON.
 * The suite's pauses are real time (3 s each), so the gateway runs on the system clock.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { DEVIATIONS, type ConfigurationName } from './deviations.ts'

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const SUITE_DIR = dirname(createRequire(import.meta.url).resolve('http-cache-tests/package.json'))

/** How long a process may take to print that it listens. */
const START_TIMEOUT_MS = 30_000
/** Upper bound for one whole client run (the suite itself takes about a minute). */
const CLIENT_TIMEOUT_MS = 10 * 60_000

export type TestKind = 'required' | 'optimal' | 'check'

/** One test as the suite describes it (only the members used here). */
interface SuiteTest {
  id: string
  name: string
  kind?: TestKind
  browser_only?: boolean
  depends_on?: string[]
}

interface Suite {
  id: string
  name: string
  tests: SuiteTest[]
}

/** A raw result as the suite's client reports it: true, or [error name, message]. */
export type RawResult = true | [string, string]

/**
 * pass: the test passed (and so did every test it depends on).
 * fail: an assertion failed. setup: a setup step failed (the test could not be judged).
 * dependency: passed or failed, but a test it depends on did not pass.
 * retry: the cache retried a request. untested: no result.
 */
export type Outcome = 'pass' | 'fail' | 'setup' | 'dependency' | 'retry' | 'untested'

export interface TestResult {
  id: string
  name: string
  suite: string
  kind: TestKind
  outcome: Outcome
  /** The suite's message for anything but a pass. */
  message?: string
}

export interface KindCount { passed: number, total: number }

export interface ConfigurationResult {
  configuration: ConfigurationName
  counts: Record<TestKind, KindCount>
  results: TestResult[]
  /** Wall-clock time of the client run, in ms. */
  durationMs: number
}

/** Every test the command-line client runs (the standard suites plus Surrogate-Control), in order. */
export async function loadSuites (): Promise<Suite[]> {
  const index = await import(pathToFileURL(join(SUITE_DIR, 'tests/index.mjs')).href) as { default: Suite[] }
  const surrogate = await import(pathToFileURL(join(SUITE_DIR, 'tests/surrogate-control.mjs')).href) as { default: Suite }
  // cli.mjs pushes the surrogate suite onto the same array; copy so a second call does not add it twice.
  return [...index.default.filter((s) => s.id !== surrogate.default.id), surrogate.default]
}

/**
 * Classifies raw results as lib/display.mjs determineTestResult does (dependencies honoured):
 * a test whose dependency did not pass counts as a dependency failure, whatever its own result.
 */
export function classify (suites: Suite[], raw: Record<string, RawResult>): TestResult[] {
  const tests = new Map<string, { test: SuiteTest, suite: Suite }>()
  for (const suite of suites) {
    for (const test of suite.tests) {
      if (test.browser_only === true) continue
      tests.set(test.id, { test, suite })
    }
  }
  const memo = new Map<string, Outcome>()
  const outcomeOf = (id: string, seen: Set<string>): Outcome => {
    const known = memo.get(id)
    if (known !== undefined) return known
    const result = raw[id]
    const entry = tests.get(id)
    let outcome: Outcome
    if (result === undefined || entry === undefined) {
      outcome = 'untested'
    } else if ((entry.test.depends_on ?? []).some((dep) => seen.has(dep) || outcomeOf(dep, new Set([...seen, id])) !== 'pass')) {
      outcome = 'dependency'
    } else if (result === true) {
      outcome = 'pass'
    } else if (result[0] === 'Setup') {
      outcome = result[1] === 'retry' ? 'retry' : 'setup'
    } else {
      outcome = 'fail'
    }
    memo.set(id, outcome)
    return outcome
  }
  const out: TestResult[] = []
  for (const [id, { test, suite }] of tests) {
    const outcome = outcomeOf(id, new Set())
    const result = raw[id]
    const message = outcome === 'dependency'
      ? `depends on ${(test.depends_on ?? []).filter((dep) => outcomeOf(dep, new Set()) !== 'pass').join(', ')}`
      : (result !== undefined && result !== true ? `${result[0]}: ${result[1]}` : undefined)
    out.push({
      id,
      name: test.name,
      suite: suite.id,
      kind: test.kind ?? 'required',
      outcome,
      ...(outcome !== 'pass' && message !== undefined ? { message } : {})
    })
  }
  return out
}

export function count (results: TestResult[]): Record<TestKind, KindCount> {
  const counts: Record<TestKind, KindCount> = {
    required: { passed: 0, total: 0 },
    optimal: { passed: 0, total: 0 },
    check: { passed: 0, total: 0 }
  }
  for (const r of results) {
    counts[r.kind].total++
    if (r.outcome === 'pass') counts[r.kind].passed++
  }
  return counts
}

// ---------------------------------------------------------------------------------------------
// Processes

interface Running {
  child: ChildProcess
  /** The last lines the process wrote (stdout and stderr), for error messages. */
  tail: () => string
  stop: () => Promise<void>
}

/**
 * Spawns a process and resolves with the first stdout line `match` accepts (mapped), once it
 * appears; rejects with the output so far if the process exits first or is too slow.
 */
async function startProcess<T> (command: string, args: string[], env: NodeJS.ProcessEnv, match: (line: string) => T | undefined): Promise<Running & { value: T }> {
  const child = spawn(command, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: string[] = []
  const remember = (line: string): void => {
    lines.push(line)
    if (lines.length > 200) lines.shift()
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  }
  const tail = (): string => lines.slice(-30).join('\n')
  const value = await new Promise<T>((resolve, reject) => {
    let found = false
    let buffer = ''
    const timer = setTimeout(() => {
      reject(new Error(`${args.join(' ')} did not start within ${START_TIMEOUT_MS} ms:\n${tail()}`))
    }, START_TIMEOUT_MS)
    child.stdout?.on('data', (chunk: Buffer) => {
      buffer += chunk.toString()
      let nl: number
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl)
        buffer = buffer.slice(nl + 1)
        remember(line)
        if (found) continue
        const v = match(line)
        if (v !== undefined) {
          found = true
          clearTimeout(timer)
          resolve(v)
        }
      }
    })
    child.stderr?.on('data', (chunk: Buffer) => { for (const line of chunk.toString().split('\n')) remember(line) })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      if (!found) reject(new Error(`${args.join(' ')} exited (${code ?? signal}) before listening:\n${tail()}`))
    })
  }).catch(async (err: unknown) => {
    await stop()
    throw err
  })
  return { child, tail, stop, value }
}

/** The suite's origin server on a port the OS picks. */
async function startSuiteServer (dir: string): Promise<Running & { value: number }> {
  return await startProcess(process.execPath, [join(SUITE_DIR, 'server/server.mjs')], {
    PATH: process.env.PATH,
    npm_config_protocol: 'http',
    npm_config_port: '0',
    npm_config_pidfile: join(dir, 'server.pid')
  }, (line) => {
    const m = /^Listening on http:\/\/.*:(\d+)\/$/.exec(line)
    return m?.[1] !== undefined ? Number(m[1]) : undefined
  })
}

/** The minimal configuration: one route `/` to the suite's server, memory store, no operator stale windows. */
export function minimalConfig (): string {
  return [
    '# cachegate conformance: the minimal configuration (written by test/conformance/conformance.ts)',
    'routes:',
    '  - name: conformance',
    '    path: /',
    '    origin: $' + '{ORIGIN_URL}',
    ''
  ].join('\n')
}

/** cachegate as an operator runs it, with the given config file; resolves with its public port. */
async function startGateway (configFile: string, originUrl: string): Promise<Running & { value: number }> {
  // Only what the process needs: no REDIS_URL or PORT from the caller's environment leaks in.
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'production',
    LOG_LEVEL: 'info',
    ORIGIN_URL: originUrl,
    PORT: '0',
    HOST: '127.0.0.1',
    ADMIN_PORT: '0'
  }
  return await startProcess(process.execPath, ['--import', 'tsx', join(ROOT, 'src/main.ts'), '--config', configFile], env, (line) => {
    if (!line.includes('cachegate listening')) return undefined
    try {
      const record = JSON.parse(line) as { port?: unknown }
      return typeof record.port === 'number' ? record.port : undefined
    } catch {
      return undefined
    }
  })
}

/**
 * Runs the suite's command-line client against `base`. With `testId` it runs that one test and
 * prints the suite's request/response dump (for diagnosis) instead of JSON.
 */
async function runClient (base: string, testId: string | undefined): Promise<{ stdout: string, stderr: string }> {
  const child = spawn(process.execPath, ['--no-warnings', join(SUITE_DIR, 'cli.mjs')], {
    cwd: SUITE_DIR,
    // cli.mjs reads npm_config_id, falling back to npm_package_config_id: an empty id means every test.
    env: { PATH: process.env.PATH, npm_config_base: base, npm_config_id: testId ?? '', npm_package_config_id: '' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  const timer = setTimeout(() => child.kill('SIGKILL'), CLIENT_TIMEOUT_MS)
  const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)))
  clearTimeout(timer)
  if (code !== 0) throw new Error(`http-cache-tests client exited with ${code}:\n${stderr.slice(-2000)}`)
  return { stdout, stderr }
}

export interface RunOptions {
  configuration: ConfigurationName
  /** Run one test and return the suite's dump of its exchanges instead of results. */
  testId?: string
}

/** Starts the suite's server and a gateway for one configuration, runs the client, stops both. */
export async function runConfiguration (options: RunOptions): Promise<ConfigurationResult & { dump?: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'cachegate-conformance-'))
  const stops: Array<() => Promise<void>> = []
  try {
    const server = await startSuiteServer(dir)
    stops.push(server.stop)
    let configFile = join(ROOT, 'routes.yaml')
    if (options.configuration === 'minimal') {
      configFile = join(dir, 'minimal.yaml')
      await writeFile(configFile, minimalConfig())
    }
    const gateway = await startGateway(configFile, `http://127.0.0.1:${server.value}`)
    stops.push(gateway.stop)
    const started = performance.now()
    const { stdout } = await runClient(`http://127.0.0.1:${gateway.value}`, options.testId)
    const durationMs = Math.round(performance.now() - started)
    if (gateway.child.exitCode !== null || gateway.child.signalCode !== null) {
      throw new Error(`the gateway exited during the run:\n${gateway.tail()}`)
    }
    if (options.testId !== undefined) {
      return { configuration: options.configuration, counts: count([]), results: [], durationMs, dump: `${stdout}\n--- suite server ---\n${server.tail()}` }
    }
    const start = stdout.indexOf('{')
    let raw: Record<string, RawResult>
    try {
      raw = JSON.parse(stdout.slice(start)) as Record<string, RawResult>
    } catch {
      throw new Error(`http-cache-tests client printed no JSON results:\n${stdout.slice(-2000)}`)
    }
    const results = classify(await loadSuites(), raw)
    return { configuration: options.configuration, counts: count(results), results, durationMs }
  } finally {
    for (const stop of stops.reverse()) await stop()
    await rm(dir, { recursive: true, force: true })
  }
}

/** Results that did not pass, required and optimal first. */
export function failures (result: ConfigurationResult, kinds: TestKind[] = ['required', 'optimal', 'check']): TestResult[] {
  return kinds.flatMap((kind) => result.results.filter((r) => r.kind === kind && r.outcome !== 'pass'))
}

/** The deviation listed for a test in a configuration, if any. */
export function deviationFor (configuration: ConfigurationName, id: string): string | undefined {
  return DEVIATIONS.find((d) => d.id === id && d.configurations.includes(configuration))?.reason
}
