/**
 * The deployment files (Dockerfile, deploy/**) checked statically against each other and the
 * source: no Docker engine or cluster is needed. What a wrong value would break at deploy time
 * (a probe on the wrong port, a config the loader rejects, a dashboard on a metric nobody
 * exports, an image that runs a file the build does not emit) fails here instead.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { dirname, join, relative, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import type { Test } from 'tap'
import ts from 'typescript'
import { parseAllDocuments } from 'yaml'
import { ConfigError, parseConfig } from '../../src/config/load.ts'
import type { GatewayConfig } from '../../src/config/types.ts'

const root = resolve(fileURLToPath(new URL('../..', import.meta.url)))
const at = (path: string): string => join(root, ...path.split('/'))
const read = (path: string): string => readFileSync(at(path), 'utf8')
/** Repository-relative path with forward slashes. */
const repoPath = (absolute: string): string => relative(root, absolute).split(sep).join('/')

// ---------------------------------------------------------------------------------------------
// Navigating parsed YAML and JSON without `any`

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function isList (value: unknown): value is unknown[] {
  return Array.isArray(value)
}

function get (value: unknown, ...path: Array<string | number>): unknown {
  let current = value
  for (const segment of path) {
    if (typeof segment === 'number') current = isList(current) ? current[segment] : undefined
    else current = isRecord(current) ? current[segment] : undefined
  }
  return current
}

const list = (value: unknown): unknown[] => isList(value) ? value : []
const text = (value: unknown): string => typeof value === 'string' ? value : typeof value === 'number' ? String(value) : ''
const entries = (value: unknown): Array<[string, unknown]> => isRecord(value) ? Object.entries(value) : []

// ---------------------------------------------------------------------------------------------
// Every YAML document under deploy/

interface YamlFile {
  /** Repository-relative, e.g. deploy/kubernetes/redis.yaml */
  path: string
  errors: string[]
  docs: unknown[]
}

function walk (directory: string): string[] {
  return readdirSync(at(directory), { withFileTypes: true }).flatMap((entry) => {
    const path = `${directory}/${entry.name}`
    return entry.isDirectory() ? walk(path) : [path]
  })
}

const deployFiles = walk('deploy')
const yamlFiles: YamlFile[] = deployFiles.filter((path) => /\.ya?ml$/.test(path)).sort().map((path) => {
  const parsed = parseAllDocuments(read(path))
  const docs = isList(parsed) ? parsed : []
  const errors = isList(parsed)
    ? parsed.flatMap((doc) => [...doc.errors, ...doc.warnings].map((problem) => `${path}: ${problem.message}`))
    : []
  return { path, errors, docs: docs.map((doc) => doc.toJS() as unknown).filter((doc) => doc !== null) }
})

function yamlDoc (path: string): unknown {
  const file = yamlFiles.find((candidate) => candidate.path === path)
  if (file === undefined) throw new Error(`${path} is missing`)
  return file.docs[0]
}

interface Manifest { file: string, doc: unknown }
const manifests: Manifest[] = yamlFiles
  .filter((file) => file.path.startsWith('deploy/kubernetes/') && !file.path.endsWith('/kustomization.yaml'))
  .flatMap((file) => file.docs.map((doc) => ({ file: file.path, doc })))

function manifest (kind: string, name: string): unknown {
  const found = manifests.find((m) => get(m.doc, 'kind') === kind && get(m.doc, 'metadata', 'name') === name)
  if (found === undefined) throw new Error(`no ${kind} ${name} under deploy/kubernetes`)
  return found.doc
}

const compose = yamlDoc('deploy/compose.yaml')
const service = (name: string): unknown => get(compose, 'services', name)

/** A random admin token, standing in for what an operator sets at deploy time. */
const OPERATOR_TOKEN = '5b0e9d3c7a214f68b2c19e07d4a5f3b1'
/** The host environment compose runs with in these tests. */
const HOST_ENV: Record<string, string> = { CACHEGATE_ADMIN_TOKEN: OPERATOR_TOKEN }

/**
 * Compose `${VAR:-default}` / `${VAR-default}` / `${VAR}` / `${VAR:?error}` against `host`, and
 * `$$`. A required variable that `host` lacks throws compose's error.
 */
function composeValue (value: unknown, host: Record<string, string> = HOST_ENV): string {
  return text(value).replace(/\$\$|\$\{(\w+)(?:(:?-)([^}]*)|:\?([^}]*))?\}/g, (match, name: string, _dash, fallback: string | undefined, required: string | undefined) => {
    if (match === '$$') return '$'
    const set = host[name]
    if (required !== undefined) {
      if (set === undefined || set === '') throw new Error(`compose: ${name}: ${required}`)
      return set
    }
    return set !== undefined && set !== '' ? set : fallback ?? ''
  })
}

function composeEnv (name: string, host: Record<string, string> = HOST_ENV): Record<string, string> {
  const environment = get(service(name), 'environment')
  if (isList(environment)) {
    return Object.fromEntries(environment.map((item) => {
      const [key = '', ...rest] = text(item).split('=')
      return [key, composeValue(rest.join('='), host)]
    }))
  }
  return Object.fromEntries(entries(environment).map(([key, value]) => [key, composeValue(value, host)]))
}

// ---------------------------------------------------------------------------------------------
// Dockerfile

interface Instruction { stage: number, keyword: string, args: string }

/** Instructions with continuation lines joined and comments dropped, numbered by stage. */
function parseDockerfile (source: string): Instruction[] {
  const instructions: Instruction[] = []
  let stage = -1
  let buffer = ''
  for (const raw of source.split('\n')) {
    const line = raw.trim()
    if (line.startsWith('#') || (buffer === '' && line === '')) continue
    if (line.endsWith('\\')) {
      buffer += line.slice(0, -1) + ' '
      continue
    }
    buffer += line
    const match = /^(\w+)\s+(.*)$/s.exec(buffer.trim())
    buffer = ''
    if (match === null) continue
    const keyword = (match[1] ?? '').toUpperCase()
    if (keyword === 'FROM') stage++
    instructions.push({ stage, keyword, args: (match[2] ?? '').replace(/\s+/g, ' ').trim() })
  }
  return instructions
}

const dockerfile = parseDockerfile(read('Dockerfile'))
const stages = dockerfile.filter((i) => i.keyword === 'FROM')
const lastStage = stages.length - 1
const inStage = (stage: number, keyword: string): Instruction[] =>
  dockerfile.filter((i) => i.stage === stage && i.keyword === keyword)

/** COPY flags, sources and destination. */
function parseCopy (args: string): { from: string | undefined, sources: string[], dest: string } {
  const words = args.split(' ')
  const flags = words.filter((word) => word.startsWith('--'))
  const paths = words.filter((word) => !word.startsWith('--'))
  const from = flags.find((flag) => flag.startsWith('--from='))?.slice('--from='.length)
  return { from, sources: paths.slice(0, -1).map((p) => p.replace(/^\.\//, '').replace(/\/$/, '')), dest: paths.at(-1) ?? '' }
}

function jsonForm (args: string): unknown {
  return JSON.parse(args) as unknown
}

// ---------------------------------------------------------------------------------------------
// What `npm run build` emits

const packageJson: unknown = JSON.parse(read('package.json'))
const buildScript = text(get(packageJson, 'scripts', 'build'))
const buildProject = /\btsc -p (\S+)/.exec(buildScript)?.[1] ?? ''

function buildConfig (): ts.ParsedCommandLine {
  const host: ts.ParseConfigFileHost = {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
      throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'))
    }
  }
  const parsed = ts.getParsedCommandLineOfConfigFile(at(buildProject), {}, host)
  if (parsed === undefined) throw new Error(`cannot read ${buildProject}`)
  return parsed
}

/** The .js file the build writes for a source file (repository-relative). */
function emitted (parsed: ts.ParsedCommandLine, source: string): string | undefined {
  const js = ts.getOutputFileNames(parsed, at(source), false).find((file) => file.endsWith('.js'))
  return js === undefined ? undefined : repoPath(js)
}

/** Relative imports of a TypeScript file, resolved to repository-relative paths. */
function relativeImports (file: string): string[] {
  const source = read(file)
  const found: string[] = []
  for (const match of source.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)['"](\.\.?\/[^'"]+)['"]/g)) {
    const specifier = match[1]
    if (specifier !== undefined) found.push(repoPath(resolve(dirname(at(file)), specifier)))
  }
  return found
}

// ---------------------------------------------------------------------------------------------
// PromQL: the metric names an expression reads

const PROMQL_FUNCTIONS = new Set([
  'sum', 'min', 'max', 'avg', 'count', 'stddev', 'stdvar', 'topk', 'bottomk', 'quantile', 'count_values', 'group',
  'rate', 'irate', 'increase', 'delta', 'idelta', 'deriv', 'changes', 'resets', 'histogram_quantile',
  'avg_over_time', 'min_over_time', 'max_over_time', 'sum_over_time', 'count_over_time', 'quantile_over_time',
  'last_over_time', 'abs', 'ceil', 'floor', 'round', 'clamp', 'clamp_min', 'clamp_max', 'absent', 'absent_over_time',
  'vector', 'scalar', 'time', 'timestamp', 'sort', 'sort_desc', 'label_replace', 'label_join'
])
const PROMQL_KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset'])

/** Metric names and unknown function names (as `fn:name`) in a PromQL expression. */
function promqlNames (expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, ' ') // strings (label values, regexes)
    .replace(/\{[^{}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // range selectors
    .replace(/\$\{?\w+\}?/g, ' ') // Grafana variables
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ') // label lists
    .replace(/\boffset\s+\w+/g, ' ')
    .replace(/(?<![\w:])\d+(?:\.\d+)?(?:e[+-]?\d+)?\b/gi, ' ') // numbers
  const names: string[] = []
  for (const match of stripped.matchAll(/[A-Za-z_:][\w:]*/g)) {
    const word = match[0]
    if (/^\s*\(/.test(stripped.slice(match.index + word.length))) {
      if (!PROMQL_FUNCTIONS.has(word)) names.push(`fn:${word}`)
    } else if (!PROMQL_KEYWORDS.has(word.toLowerCase())) {
      names.push(word)
    }
  }
  return names
}

/** The metrics cachegate exports (contract with src/observability) and the redis_exporter ones we use. */
const CACHEGATE_METRICS = [
  'cachegate_requests_total', 'cachegate_origin_requests_total', 'cachegate_origin_duration_seconds',
  'cachegate_request_duration_seconds', 'cachegate_coalesced_waiters_total', 'cachegate_refreshes_total',
  'cachegate_purges_total', 'cachegate_purged_entries_total', 'cachegate_store_errors_total',
  'cachegate_store_duration_seconds', 'cachegate_store_bytes', 'cachegate_store_entries', 'cachegate_l1_bytes',
  'cachegate_redis_up'
]
const HISTOGRAMS = ['cachegate_origin_duration_seconds', 'cachegate_request_duration_seconds', 'cachegate_store_duration_seconds']
const REDIS_EXPORTER_METRICS = ['redis_memory_used_bytes', 'redis_memory_max_bytes', 'redis_evicted_keys_total', 'redis_up']
const ALLOWED_METRICS = new Set([
  ...CACHEGATE_METRICS,
  ...HISTOGRAMS.flatMap((name) => ['_bucket', '_sum', '_count'].map((suffix) => name + suffix)),
  ...REDIS_EXPORTER_METRICS
])
/** A series name as exported: histogram series without their suffix. */
const baseMetric = (name: string): string => HISTOGRAMS.find((h) => name.startsWith(`${h}_`)) ?? name

const dashboard: unknown = JSON.parse(read('deploy/grafana/cachegate-dashboard.json'))
const dashboardPanels = list(get(dashboard, 'panels')).flatMap((panel) => [panel, ...list(get(panel, 'panels'))])
const dashboardExprs = dashboardPanels.flatMap((panel) =>
  list(get(panel, 'targets')).map((target) => ({ where: `panel "${text(get(panel, 'title'))}"`, expr: text(get(target, 'expr')) })))
const alertRules = list(get(yamlDoc('deploy/prometheus/alerts.yaml'), 'groups')).flatMap((group) => list(get(group, 'rules')))
const alertExprs = alertRules.map((rule) => ({ where: `alert ${text(get(rule, 'alert'))}`, expr: text(get(rule, 'expr')) }))

// ---------------------------------------------------------------------------------------------
// The source

const sourceFiles = walk('src').filter((path) => path.endsWith('.ts'))
const sourceText = sourceFiles.map((path) => read(path)).join('\n')

// =============================================================================================

t.test('every YAML file under deploy/ parses without errors or warnings', async (t) => {
  for (const expected of [
    'deploy/compose.yaml', 'deploy/config/routes.yaml', 'deploy/prometheus/alerts.yaml', 'deploy/prometheus/scrape.yaml',
    'deploy/kubernetes/kustomization.yaml', 'deploy/kubernetes/deployment.yaml', 'deploy/kubernetes/redis.yaml'
  ]) {
    t.ok(yamlFiles.some((file) => file.path === expected), `${expected} exists`)
  }
  for (const file of yamlFiles) {
    t.same(file.errors, [], `${file.path} parses cleanly`)
    t.ok(file.docs.length > 0, `${file.path} has at least one document`)
  }
})

t.test('the Grafana dashboard is JSON with a Prometheus data source variable that every query uses', async (t) => {
  t.ok(Number(get(dashboard, 'schemaVersion')) >= 36, 'a current schemaVersion')
  const variables = list(get(dashboard, 'templating', 'list'))
  const datasource = variables.find((v) => get(v, 'type') === 'datasource')
  t.equal(get(datasource, 'query'), 'prometheus', 'a Prometheus data source variable')
  const reference = `\${${text(get(datasource, 'name'))}}`
  const ids = dashboardPanels.map((panel) => get(panel, 'id'))
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique')
  for (const panel of dashboardPanels) {
    const title = text(get(panel, 'title'))
    const x = Number(get(panel, 'gridPos', 'x'))
    const w = Number(get(panel, 'gridPos', 'w'))
    t.ok(x >= 0 && w > 0 && x + w <= 24, `panel "${title}" fits the 24-column grid`)
    if (get(panel, 'type') === 'row') continue
    t.equal(get(panel, 'datasource', 'uid'), reference, `panel "${title}" uses the variable`)
    t.ok(list(get(panel, 'targets')).length > 0, `panel "${title}" has a query`)
    for (const target of list(get(panel, 'targets'))) {
      t.equal(get(target, 'datasource', 'uid'), reference, `a query of panel "${title}" uses the variable`)
    }
  }
})

t.test('the dashboard shows every metric cachegate exports', async (t) => {
  const used = new Set(dashboardExprs.flatMap(({ expr }) => promqlNames(expr)).map(baseMetric))
  for (const metric of CACHEGATE_METRICS) t.ok(used.has(metric), `${metric} is on the dashboard`)
  const titles = dashboardPanels.map((panel) => text(get(panel, 'title')).toLowerCase())
  for (const view of ['hit ratio', 'by outcome', 'p50', 'p99', 'origin requests', 'origin latency', 'coalesced', 'refreshes', 'purges', 'purged entries', 'store errors', 'store latency', 'l1 bytes', 'redis']) {
    t.ok(titles.some((title) => title.includes(view)), `a panel for ${view}`)
  }
})

t.test('the PromQL name check finds metric names and ignores labels, functions, numbers and variables', async (t) => {
  t.same(promqlNames('sum by (le, route) (rate(foo_seconds_bucket{route=~"$route", x="a b"}[$__rate_interval])) / on(instance) bar > 0.8 and baz == 0'),
    ['foo_seconds_bucket', 'bar', 'baz'])
  t.same(promqlNames('histogram_quantile(0.99, sum(rate(x[5m])) by (le))'), ['x'])
  t.same(promqlNames('no_such_function(up_total)'), ['fn:no_such_function', 'up_total'])
})

t.test('every PromQL expression in the dashboard and the alerts reads only cachegate and redis_exporter metrics', async (t) => {
  const all = [...dashboardExprs, ...alertExprs]
  t.ok(dashboardExprs.length > 10 && alertExprs.length >= 6, 'there are expressions to check')
  for (const { where, expr } of all) {
    const names = promqlNames(expr)
    t.ok(names.length > 0, `${where} reads a metric`)
    for (const name of names) t.ok(ALLOWED_METRICS.has(name), `${where}: ${name} is a known metric or function`)
    t.equal(expr.split('(').length, expr.split(')').length, `${where}: parentheses balance`)
    t.equal(expr.split('{').length, expr.split('}').length, `${where}: braces balance`)
  }
  for (const variable of list(get(dashboard, 'templating', 'list'))) {
    const query = text(get(variable, 'query', 'query')) || text(get(variable, 'query'))
    const metric = /label_values\(\s*([\w:]+)\s*,/.exec(query)?.[1]
    if (metric !== undefined) t.ok(ALLOWED_METRICS.has(metric), `variable ${text(get(variable, 'name'))} reads ${metric}`)
  }
})

t.test('once the source exports metrics, it exports every cachegate metric the dashboard and alerts read', async (t) => {
  const exporting = /from ['"]prom-client['"]/.test(sourceText)
  const used = new Set([...dashboardExprs, ...alertExprs].flatMap(({ expr }) => promqlNames(expr)).map(baseMetric))
  t.test('metric names appear in src/', { todo: exporting ? false : 'no prom-client import in src/ yet' }, async (t) => {
    for (const metric of [...used].filter((name) => name.startsWith('cachegate_'))) {
      const quoted = (name: string): boolean => sourceText.includes(`'${name}'`) || sourceText.includes(`"${name}"`) || sourceText.includes(`\`${name}\``)
      t.ok(quoted(metric) || quoted(metric.slice('cachegate_'.length)), `${metric} is defined in src/`)
    }
  })
  t.test('the admin listener serves /metrics', { todo: sourceText.includes("'/metrics'") ? false : 'GET /metrics is not registered in src/ yet' }, async (t) => {
    t.ok(sourceText.includes("'/metrics'"), '/metrics is registered')
  })
})

t.test('alerts.yaml defines the agreed alerts, each with a duration, a severity, a summary and a description', async (t) => {
  const names = alertRules.map((rule) => text(get(rule, 'alert')))
  t.equal(new Set(names).size, names.length, 'alert names are unique')
  for (const name of ['CachegateHitRatioLow', 'RedisMemoryHigh', 'RedisEvictionsRising', 'CachegateRedisDown', 'CachegateOriginErrorRate', 'CachegateStoreErrors']) {
    t.ok(names.includes(name), `${name} is defined`)
  }
  for (const rule of alertRules) {
    const name = text(get(rule, 'alert'))
    t.match(text(get(rule, 'for')), /^\d+[smh]$/, `${name} has a for: duration`)
    t.ok(['info', 'warning', 'critical'].includes(text(get(rule, 'labels', 'severity'))), `${name} has a severity`)
    t.ok(text(get(rule, 'annotations', 'summary')).length > 10, `${name} has a summary`)
    t.ok(text(get(rule, 'annotations', 'description')).length > 20, `${name} has a description`)
  }
  const rule = (name: string): unknown => alertRules.find((r) => get(r, 'alert') === name)
  t.match(text(get(rule('CachegateHitRatioLow'), 'expr')), /< 0\.8\b/, 'hit ratio threshold is 0.8')
  t.equal(get(rule('CachegateHitRatioLow'), 'for'), '5m')
  t.match(text(get(rule('CachegateRedisDown'), 'expr')), /cachegate_redis_up == 0/)
  t.equal(get(rule('CachegateRedisDown'), 'for'), '1m')
  t.match(text(get(rule('RedisMemoryHigh'), 'expr')), /redis_memory_used_bytes \/ redis_memory_max_bytes\) > 0\.9/)
  t.match(text(get(rule('CachegateOriginErrorRate'), 'expr')), /status=~"[^"]*"[\s\S]*> 0\.05/)
  t.match(text(get(rule('RedisEvictionsRising'), 'expr')), /rate\(redis_evicted_keys_total\[/)
})

t.test('CachegateOriginErrorRate counts 5xx answers and origins that gave no answer (status="error": refused, timed out)', async (t) => {
  const expr = text(get(alertRules.find((r) => get(r, 'alert') === 'CachegateOriginErrorRate'), 'expr'))
  const selectors = [...expr.matchAll(/cachegate_origin_requests_total\{status=~"([^"]*)"\}/g)].map((m) => m[1] ?? '')
  t.equal(selectors.length, 1, 'one status selector, in the numerator')
  // PromQL regex matchers are fully anchored.
  const errors = new RegExp(`^(?:${selectors[0] ?? ''})$`)
  for (const status of ['500', '502', '503', '504', 'error']) t.ok(errors.test(status), `status="${status}" counts as an error`)
  for (const status of ['200', '304', '404', '499', 'errors']) t.notOk(errors.test(status), `status="${status}" does not`)
  t.ok(sourceText.includes("'error'"), 'the source labels an origin request without a response "error"')
})

t.test('the scrape examples read /metrics on the admin port', async (t) => {
  const jobs = list(get(yamlDoc('deploy/prometheus/scrape.yaml'), 'scrape_configs'))
  const composeJob = jobs.find((job) => get(job, 'static_configs') !== undefined)
  t.equal(get(composeJob, 'metrics_path'), '/metrics')
  const targets = list(get(composeJob, 'static_configs', 0, 'targets')).map(text)
  t.same(targets, ['gateway:9091'], 'the compose gateway on its admin port')
  t.ok(service('gateway') !== undefined, 'which is a compose service')
  const podJob = jobs.find((job) => get(job, 'kubernetes_sd_configs', 0, 'role') === 'pod')
  t.ok(podJob !== undefined, 'a Kubernetes pod job follows the prometheus.io annotations')
  t.match(JSON.stringify(podJob), /prometheus_io_port/)
})

// ---------------------------------------------------------------------------------------------

t.test('the image builds in a node:20-bookworm-slim stage with the commands CI uses', async (t) => {
  t.equal(stages.length, 2, 'two stages')
  t.equal(stages[0]?.args, 'node:20-bookworm-slim AS build')
  const runs = inStage(0, 'RUN').map((i) => i.args)
  t.ok(runs.some((run) => /\bnpm ci\b/.test(run) && !run.includes('--omit=dev')), 'build stage: npm ci with dev dependencies')
  t.ok(runs.some((run) => /\bnpm run build\b/.test(run)), 'build stage: npm run build')
  t.match(read('.ci/run'), /\bnpm ci\b/, 'CI installs with npm ci too')
  t.equal(buildScript, 'tsc -p tsconfig.build.json', 'npm run build is the TypeScript build')
})

t.test('npm ci builds once (prepare) so npm start runs the compiled gateway without compiling', async (t) => {
  const scripts = get(packageJson, 'scripts')
  t.equal(text(get(scripts, 'prepare')), 'npm run build', 'npm ci and npm install run the build through prepare')
  t.equal(text(get(scripts, 'start')), 'node dist/src/main.js', 'npm start starts the built gateway, no tsc')
  t.notMatch(text(get(scripts, 'test')), /\bbuild\b|dist\//, 'tests run the sources through tsx, not dist/')
  t.notMatch(read('.ci/run'), /--ignore-scripts/, 'CI lets npm ci run prepare')
})

t.test('every npm ci in the Dockerfile skips prepare: the build stage builds after copying the sources, the runtime has no tsc', async (t) => {
  const installs = dockerfile.filter((i) => i.keyword === 'RUN' && /\bnpm ci\b/.test(i.args))
  t.equal(installs.length, 2)
  for (const install of installs) t.match(install.args, /--ignore-scripts\b/, `stage ${install.stage}: ${install.args}`)
})

t.test('the bin entry point keeps its shebang through the build, so npx cachegate runs it with node', async (t) => {
  const parsed = buildConfig()
  const source = read('src/main.ts')
  const out = ts.transpileModule(source, { compilerOptions: parsed.options, fileName: at('src/main.ts') }).outputText
  t.ok(out.startsWith('#!/usr/bin/env node\n'), 'dist/src/main.js starts with #!/usr/bin/env node')
})

t.test('dist/src/main.js and dist/examples/catalog-origin.js are what npm run build emits', async (t) => {
  const parsed = buildConfig()
  const inputs = parsed.fileNames.map(repoPath)
  t.ok(inputs.includes('src/main.ts'), `${buildProject} compiles src/main.ts`)
  t.ok(inputs.includes('examples/catalog-origin.ts'), `${buildProject} compiles examples/catalog-origin.ts`)
  t.equal(emitted(parsed, 'src/main.ts'), 'dist/src/main.js')
  t.equal(emitted(parsed, 'examples/catalog-origin.ts'), 'dist/examples/catalog-origin.js')
  t.equal(get(packageJson, 'bin', 'cachegate'), 'dist/src/main.js', 'package.json bin agrees')
})

t.test('the build stage copies every file the TypeScript build reads', async (t) => {
  const copied = inStage(0, 'COPY').map((i) => parseCopy(i.args)).filter((c) => c.from === undefined).flatMap((c) => c.sources)
  const covered = (path: string): boolean => copied.some((source) => path === source || path.startsWith(`${source}/`))
  for (const file of ['package.json', 'package-lock.json', buildProject]) t.ok(covered(file), `${file} is copied`)
  const extended = text(get(JSON.parse(read(buildProject)) as unknown, 'extends'))
  if (extended !== '') t.ok(covered(repoPath(resolve(dirname(at(buildProject)), extended))), `${extended} is copied`)

  const seen = new Set<string>()
  const queue = buildConfig().fileNames.map(repoPath)
  while (queue.length > 0) {
    const file = queue.pop()
    if (file === undefined || seen.has(file)) continue
    seen.add(file)
    if (!file.endsWith('.ts')) continue
    queue.push(...relativeImports(file))
  }
  const missing = [...seen].filter((file) => !covered(file))
  t.same(missing, [], 'every compiled file and everything it imports is inside a COPY source')
  t.same([...seen].filter((file) => !existsSync(at(file))), [], 'every relative import resolves to a file')
})

t.test('the runtime stage installs production dependencies only and runs the compiled gateway as node under tini', async (t) => {
  t.equal(stages[lastStage]?.args, 'node:20-bookworm-slim AS runtime')
  const runs = inStage(lastStage, 'RUN').map((i) => i.args)
  t.ok(runs.some((run) => /\bnpm ci\b.*--omit=dev/.test(run)), 'npm ci --omit=dev')
  t.notOk(runs.some((run) => /\bnpm run build\b|\btsx\b/.test(run)), 'no build and no tsx at run time')
  t.ok(runs.some((run) => /apt-get install -y --no-install-recommends tini\b/.test(run) && run.includes('rm -rf /var/lib/apt/lists')), 'tini without recommends, apt lists removed')
  t.ok(inStage(lastStage, 'ENV').some((i) => /\bNODE_ENV=production\b/.test(i.args)), 'NODE_ENV=production')
  t.same(inStage(lastStage, 'USER').map((i) => i.args), ['node'], 'runs as node')
  t.same(inStage(lastStage, 'EXPOSE').map((i) => i.args), ['8080 9091'])
  t.same(jsonForm(inStage(lastStage, 'ENTRYPOINT')[0]?.args ?? 'null'), ['/usr/bin/tini', '--'])
  t.same(jsonForm(inStage(lastStage, 'CMD')[0]?.args ?? 'null'), ['node', 'dist/src/main.js'])

  const buildDir = inStage(0, 'WORKDIR')[0]?.args ?? ''
  const workdir = inStage(lastStage, 'WORKDIR')[0]?.args ?? ''
  const copies = inStage(lastStage, 'COPY').map((i) => parseCopy(i.args))
  const dist = copies.find((c) => c.from === 'build')
  t.same(dist?.sources, [`${buildDir}/dist`], 'dist/ comes from the build stage')
  t.ok(dist !== undefined && resolve(workdir, dist.dest) === resolve(workdir, 'dist'), 'into WORKDIR/dist, where CMD looks')
  for (const copy of copies.filter((c) => c.from === undefined)) {
    for (const source of copy.sources) t.ok(existsSync(at(source)), `${source} exists in the repository`)
  }
  t.ok(copies.some((c) => c.sources.includes('routes.yaml')), 'the default routes.yaml is in the image')

  const healthcheck = inStage(lastStage, 'HEALTHCHECK')[0]?.args ?? ''
  const command = jsonForm(/\bCMD (\[.*\])$/.exec(healthcheck)?.[1] ?? 'null')
  t.equal(get(command, 0), 'node', 'the health check runs node (no curl in slim images)')
  t.match(text(get(command, 2)), /fetch\('http:\/\/127\.0\.0\.1:'\+\(process\.env\.ADMIN_PORT\|\|9091\)\+'\/healthz'\)/)
})

t.test('.dockerignore keeps host artefacts out of the context and nothing the Dockerfile copies', async (t) => {
  const patterns = read('.dockerignore').split('\n').map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#'))
  for (const required of ['node_modules', 'dist', '.git', '.tap', 'bench/results', '.scratch']) {
    t.ok(patterns.includes(required), `${required} is ignored`)
  }
  const sources = dockerfile.filter((i) => i.keyword === 'COPY').map((i) => parseCopy(i.args)).filter((c) => c.from === undefined).flatMap((c) => c.sources)
  for (const source of sources) {
    t.notOk(patterns.some((p) => source === p || source.startsWith(`${p}/`)), `${source} is not ignored`)
  }
})

// ---------------------------------------------------------------------------------------------

t.test('compose builds the gateway and the origin from the repository Dockerfile', async (t) => {
  for (const name of ['gateway', 'origin']) {
    const build = get(service(name), 'build')
    const context = resolve(at('deploy'), text(get(build, 'context')))
    t.equal(context, root, `${name}: context is the repository root`)
    t.ok(existsSync(join(context, text(get(build, 'dockerfile')) || 'Dockerfile')), `${name}: its Dockerfile exists`)
  }
})

t.test('every file compose mounts into a container exists in the repository', async (t) => {
  let mounts = 0
  for (const [name, definition] of entries(get(compose, 'services'))) {
    for (const volume of list(get(definition, 'volumes'))) {
      const source = typeof volume === 'string' ? volume.split(':')[0] ?? '' : text(get(volume, 'source'))
      if (!source.startsWith('.') && !source.startsWith('/')) continue // a named volume
      mounts++
      t.ok(existsSync(resolve(at('deploy'), source)), `${name}: ${source} exists`)
    }
  }
  t.ok(mounts > 0, 'the gateway config is mounted')
})

t.test('the compose gateway publishes 8080, keeps 9091 on loopback and health-checks the admin /healthz', async (t) => {
  const gateway = service('gateway')
  t.same(list(get(gateway, 'ports')).map(text), ['8080:8080', '127.0.0.1:9091:9091'])
  const test = list(get(gateway, 'healthcheck', 'test')).map(text)
  t.equal(test[0], 'CMD')
  t.match(test.join(' '), /http:\/\/127\.0\.0\.1:9091\/healthz/)
  t.ok(sourceText.includes("'/healthz'"), 'GET /healthz is registered in src/')
})

t.test('the compose gateway starts after a healthy Redis and origin and reaches them by service name', async (t) => {
  const gateway = service('gateway')
  const env = composeEnv('gateway')
  t.equal(get(gateway, 'depends_on', 'redis', 'condition'), 'service_healthy')
  t.equal(get(gateway, 'depends_on', 'origin', 'condition'), 'service_healthy')

  const redisUrl = new URL(env.REDIS_URL ?? '')
  t.equal(redisUrl.hostname, 'redis')
  t.equal(redisUrl.port, '6379')
  const originUrl = new URL(env.ORIGIN_URL ?? '')
  t.ok(service(originUrl.hostname) !== undefined, 'ORIGIN_URL names a compose service')
  t.equal(originUrl.port, composeEnv(originUrl.hostname).PORT, 'on the port the origin listens on')
  t.equal(composeEnv('origin').HOST, '0.0.0.0', 'the origin listens beyond loopback')
  t.same(get(service('origin'), 'command'), ['node', 'dist/examples/catalog-origin.js'], 'the compiled sample origin')
  // The image's HEALTHCHECK asks the gateway's admin port, which the origin does not open.
  t.notMatch(list(get(service('origin'), 'healthcheck', 'test')).map(text).join(' '), /9091/, 'the origin has its own health check')
  t.match(list(get(service('origin'), 'healthcheck', 'test')).map(text).join(' '), new RegExp(`http://origin:${originUrl.port}/`))
  t.match(text(get(gateway, 'environment', 'CACHEGATE_ADMIN_TOKEN')), /^\$\{CACHEGATE_ADMIN_TOKEN:\?[^}]+\}$/, 'the admin token comes from the host environment, with no default')

  const config = env.CACHEGATE_CONFIG ?? ''
  const mounted = list(get(gateway, 'volumes')).map(text).map((v) => v.split(':')[1])
  t.ok(mounted.includes(config), `CACHEGATE_CONFIG (${config}) is a mounted file`)
})

t.test('Redis in compose is a bounded LRU cache without persistence', async (t) => {
  const redis = service('redis')
  t.match(text(get(redis, 'image')), /^redis:7/)
  const command = list(get(redis, 'command')).map(text)
  const arg = (flag: string): string | undefined => command[command.indexOf(flag) + 1]
  t.equal(arg('--maxmemory'), '256mb')
  t.equal(arg('--maxmemory-policy'), 'allkeys-lru')
  t.equal(arg('--save'), '')
  t.equal(arg('--appendonly'), 'no')
  t.same(list(get(redis, 'healthcheck', 'test')).map(text), ['CMD', 'redis-cli', 'ping'])
})

// ---------------------------------------------------------------------------------------------

function loads (t: Test, source: string, file: string, env: Record<string, string>): GatewayConfig | undefined {
  try {
    return parseConfig(source, file, env)
  } catch (error) {
    t.fail(`${file} is rejected: ${error instanceof Error ? error.message : String(error)}`)
    return undefined
  }
}

t.test("deploy/config/routes.yaml loads with the gateway's own loader and the environment compose gives it", async (t) => {
  const env = composeEnv('gateway')
  const config = loads(t, read('deploy/config/routes.yaml'), 'deploy/config/routes.yaml', env)
  if (config === undefined) return
  t.same(config.listen, { host: '0.0.0.0', port: 8080 })
  t.equal(config.admin.host, '0.0.0.0', 'the admin listener is reachable from outside the container')
  t.equal(config.admin.port, 9091)
  t.equal(config.admin.token, OPERATOR_TOKEN, 'the token comes from the environment')
  t.equal(config.redis?.url, env.REDIS_URL)
  t.equal(config.routes[0]?.origin, env.ORIGIN_URL)
  t.ok((config.routes[0]?.staleWhileRevalidate ?? 0) > 0 && (config.routes[0]?.staleIfError ?? 0) > 0, 'stale windows are set')
  const grace = /^(\d+)s$/.exec(text(get(service('gateway'), 'stop_grace_period')))?.[1]
  t.ok(Number(grace) * 1000 > config.shutdownTimeout, 'compose waits longer than shutdownTimeout before SIGKILL')
})

t.test('deploy/config/routes.yaml refuses to start without ORIGIN_URL and REDIS_URL', async (t) => {
  const error = t.throws(() => parseConfig(read('deploy/config/routes.yaml'), 'routes.yaml', {}))
  t.ok(error instanceof ConfigError, 'a ConfigError')
  t.match(error instanceof Error ? error.message : '', /REDIS_URL/)
  t.match(error instanceof Error ? error.message : '', /ORIGIN_URL/)
})

// ---------------------------------------------------------------------------------------------

const deployment = manifest('Deployment', 'cachegate')
const podSpec = get(deployment, 'spec', 'template', 'spec')
const container = get(podSpec, 'containers', 0)
const containerPorts = list(get(container, 'ports'))
const containerPort = (port: unknown): number | undefined => typeof port === 'number'
  ? port
  : Number(get(containerPorts.find((p) => get(p, 'name') === port), 'containerPort')) || undefined

/** The Deployment's container environment, Secret references resolved from secret.yaml. */
function deploymentEnv (): Record<string, string> {
  const env: Record<string, string> = {}
  for (const item of list(get(container, 'env'))) {
    const name = text(get(item, 'name'))
    const ref = get(item, 'valueFrom', 'secretKeyRef')
    if (ref === undefined) {
      env[name] = text(get(item, 'value'))
      continue
    }
    const key = text(get(ref, 'key'))
    if (generatedSecrets().includes(text(get(ref, 'name')))) {
      // Generated by kustomize from a file the operator writes at deploy time.
      env[name] = OPERATOR_TOKEN
      continue
    }
    const secret = manifest('Secret', text(get(ref, 'name')))
    const plain = get(secret, 'stringData', key)
    env[name] = plain !== undefined ? text(plain) : Buffer.from(text(get(secret, 'data', key)), 'base64').toString()
  }
  return env
}

/** Secrets the kustomization generates (secretGenerator). */
function generatedSecrets (): string[] {
  return list(get(yamlDoc('deploy/kubernetes/kustomization.yaml'), 'secretGenerator')).map((g) => text(get(g, 'name')))
}

t.test('compose refuses to start without CACHEGATE_ADMIN_TOKEN and has no default token', async (t) => {
  t.throws(() => composeEnv('gateway', {}), /CACHEGATE_ADMIN_TOKEN: .*openssl rand -hex 32/)
  t.equal(composeEnv('gateway').CACHEGATE_ADMIN_TOKEN, OPERATOR_TOKEN)
})

t.test('the Kubernetes admin Secret is generated from a file the operator creates, which git and Docker ignore', async (t) => {
  const generator = list(get(yamlDoc('deploy/kubernetes/kustomization.yaml'), 'secretGenerator'))
    .find((g) => get(g, 'name') === 'cachegate-admin')
  const files = list(get(generator, 'envs')).map(text)
  t.same(files, ['admin-token.env'])
  t.notOk(existsSync(at('deploy/kubernetes/admin-token.env')) && !read('.gitignore').includes('deploy/kubernetes/admin-token.env'), 'never committed')
  t.ok(read('.gitignore').split('\n').includes('deploy/kubernetes/admin-token.env'), '.gitignore lists it')
  t.ok(read('.dockerignore').split('\n').includes('deploy/kubernetes/admin-token.env'), '.dockerignore lists it')
  const ref = list(get(container, 'env')).find((e) => get(e, 'name') === 'CACHEGATE_ADMIN_TOKEN')
  t.equal(get(ref, 'valueFrom', 'secretKeyRef', 'name'), 'cachegate-admin')
  t.not(get(ref, 'valueFrom', 'secretKeyRef', 'optional'), true, 'the pod does not start without it')
})

t.test('no file under deploy/ carries a placeholder admin token', async (t) => {
  for (const path of deployFiles) {
    t.notMatch(read(path), /change-?me/i, `${path} has no change-me`)
  }
})

t.test('kustomization lists exactly the manifest files of deploy/kubernetes', async (t) => {
  const resources = list(get(yamlDoc('deploy/kubernetes/kustomization.yaml'), 'resources')).map(text)
  for (const resource of resources) t.ok(existsSync(at(`deploy/kubernetes/${resource}`)), `${resource} exists`)
  const files = deployFiles.filter((path) => /^deploy\/kubernetes\/[^/]+\.yaml$/.test(path) && !path.endsWith('/kustomization.yaml'))
  t.same(files.map((path) => path.slice('deploy/kubernetes/'.length)).sort(), [...resources].sort(), 'and every manifest is listed')
})

t.test('every Kubernetes manifest names its kind and leaves the namespace to the user', async (t) => {
  for (const { file, doc } of manifests) {
    const name = text(get(doc, 'metadata', 'name'))
    t.ok(text(get(doc, 'apiVersion')) !== '' && text(get(doc, 'kind')) !== '' && name !== '', `${file}: ${text(get(doc, 'kind'))} ${name}`)
    t.equal(get(doc, 'metadata', 'namespace'), undefined, `${file}: ${name} has no namespace`)
  }
})

t.test('the Deployment probes the admin container port on /healthz and /readyz', async (t) => {
  t.equal(containerPort('http'), 8080, 'container port http is 8080')
  t.equal(containerPort('admin'), 9091, 'container port admin is 9091')
  const probes = { startupProbe: '/healthz', livenessProbe: '/healthz', readinessProbe: '/readyz' }
  for (const [probe, path] of Object.entries(probes)) {
    t.equal(get(container, probe, 'httpGet', 'path'), path, `${probe} asks ${path}`)
    t.equal(containerPort(get(container, probe, 'httpGet', 'port')), 9091, `${probe} goes to the admin port`)
    t.ok(sourceText.includes(`'${path}'`), `${path} is registered in src/`)
  }
  t.equal(text(get(deployment, 'spec', 'template', 'metadata', 'annotations', 'prometheus.io/port')), String(containerPort('admin')), 'Prometheus scrapes the admin port')
})

t.test('the ConfigMap routes.yaml loads with the Deployment environment and binds the ports the pod declares', async (t) => {
  const configMaps = manifests.filter((m) => get(m.doc, 'kind') === 'ConfigMap')
  const embedded = configMaps.flatMap((m) => entries(get(m.doc, 'data'))
    .filter(([key]) => key.endsWith('.yaml'))
    .map(([key, value]) => ({ where: `${m.file} ${key}`, source: text(value) })))
  t.ok(embedded.length > 0, 'a routes.yaml is embedded')
  const env = deploymentEnv()
  for (const { where, source } of embedded) {
    const config = loads(t, source, where, env)
    if (config === undefined) continue
    t.equal(config.listen.port, containerPort('http'), `${where}: public port`)
    t.equal(config.admin.port, containerPort('admin'), `${where}: admin port`)
    t.equal(config.admin.host, '0.0.0.0', `${where}: the kubelet can reach the admin listener`)
    t.equal(config.redis?.url, env.REDIS_URL, `${where}: shared Redis`)
  }
  t.equal(text(get(manifest('ConfigMap', 'cachegate-config'), 'data', 'routes.yaml')), read('deploy/config/routes.yaml'),
    'the ConfigMap carries the same text as deploy/config/routes.yaml')
})

t.test('the Deployment mounts the ConfigMap at /config and CACHEGATE_CONFIG points into it', async (t) => {
  const mount = list(get(container, 'volumeMounts')).find((m) => get(m, 'mountPath') === '/config')
  const volume = list(get(podSpec, 'volumes')).find((v) => get(v, 'name') === get(mount, 'name'))
  const configMap = manifest('ConfigMap', text(get(volume, 'configMap', 'name')))
  const file = deploymentEnv().CACHEGATE_CONFIG ?? ''
  t.ok(file.startsWith('/config/'), 'CACHEGATE_CONFIG is under /config')
  t.ok(get(configMap, 'data', file.slice('/config/'.length)) !== undefined, `the ConfigMap has ${file}`)
})

t.test('the Deployment runs as a numeric non-root user with a read-only root filesystem', async (t) => {
  const pod = get(podSpec, 'securityContext')
  const own = get(container, 'securityContext')
  t.equal(get(own, 'runAsNonRoot') ?? get(pod, 'runAsNonRoot'), true)
  // The image says USER node; the kubelet can only verify runAsNonRoot against a number.
  t.ok(Number(get(own, 'runAsUser') ?? get(pod, 'runAsUser')) > 0, 'runAsUser is a non-zero uid')
  t.equal(get(own, 'readOnlyRootFilesystem'), true)
  t.equal(get(own, 'allowPrivilegeEscalation'), false)
})

t.test('the Deployment has room for the preStop sleep and the configured shutdown within its grace period', async (t) => {
  t.equal(get(deployment, 'spec', 'replicas'), 3)
  const preStop = list(get(container, 'lifecycle', 'preStop', 'exec', 'command')).map(text)
  t.equal(preStop[0], 'sleep')
  const config = parseConfig(text(get(manifest('ConfigMap', 'cachegate-config'), 'data', 'routes.yaml')), 'routes.yaml', deploymentEnv())
  const grace = Number(get(podSpec, 'terminationGracePeriodSeconds'))
  t.equal(grace, 30)
  t.ok(grace > Number(preStop[1]) + config.shutdownTimeout / 1000, 'grace > preStop sleep + shutdownTimeout')
  for (const kind of ['requests', 'limits']) {
    t.ok(get(container, 'resources', kind, 'memory') !== undefined && get(container, 'resources', kind, 'cpu') !== undefined, `${kind} for cpu and memory`)
  }
})

t.test('the Service exposes only the public port and selects the gateway pods', async (t) => {
  const svc = manifest('Service', 'cachegate')
  const podLabels = get(deployment, 'spec', 'template', 'metadata', 'labels')
  t.equal(get(svc, 'spec', 'type'), 'ClusterIP')
  const ports = list(get(svc, 'spec', 'ports'))
  t.equal(ports.length, 1, 'one port')
  t.equal(get(ports[0], 'port'), 80)
  t.equal(containerPort(get(ports[0], 'targetPort')), 8080, 'to the http container port')
  for (const [key, value] of entries(get(svc, 'spec', 'selector'))) t.equal(get(podLabels, key), value, `selector ${key}`)
})

t.test('the PodDisruptionBudget and the HorizontalPodAutoscaler act on the gateway Deployment', async (t) => {
  const podLabels = get(deployment, 'spec', 'template', 'metadata', 'labels')
  const pdb = manifests.find((m) => get(m.doc, 'kind') === 'PodDisruptionBudget')?.doc
  for (const [key, value] of entries(get(pdb, 'spec', 'selector', 'matchLabels'))) t.equal(get(podLabels, key), value, `PDB selector ${key}`)
  const minAvailable = get(pdb, 'spec', 'minAvailable')
  const maxUnavailable = get(pdb, 'spec', 'maxUnavailable')
  t.ok(minAvailable === 2 || maxUnavailable === 1, 'minAvailable 2 or maxUnavailable 1')

  const hpa = manifests.find((m) => get(m.doc, 'kind') === 'HorizontalPodAutoscaler')?.doc
  t.equal(get(hpa, 'apiVersion'), 'autoscaling/v2')
  t.same(get(hpa, 'spec', 'scaleTargetRef'), { apiVersion: 'apps/v1', kind: 'Deployment', name: 'cachegate' })
  t.equal(get(hpa, 'spec', 'minReplicas'), get(deployment, 'spec', 'replicas'))
  const cpu = list(get(hpa, 'spec', 'metrics')).find((m) => get(m, 'resource', 'name') === 'cpu')
  t.equal(get(cpu, 'resource', 'target', 'averageUtilization'), 70)
})

t.test('the example Redis is a bounded LRU cache with a redis_exporter sidecar, behind the name REDIS_URL uses', async (t) => {
  const url = new URL(deploymentEnv().REDIS_URL ?? '')
  const svc = manifest('Service', url.hostname)
  t.equal(String(get(svc, 'spec', 'ports', 0, 'port')), url.port)
  const redis = manifest('Deployment', 'redis')
  const podLabels = get(redis, 'spec', 'template', 'metadata', 'labels')
  for (const [key, value] of entries(get(svc, 'spec', 'selector'))) t.equal(get(podLabels, key), value, `selector ${key}`)
  const containers = list(get(redis, 'spec', 'template', 'spec', 'containers'))
  const args = list(get(containers.find((c) => text(get(c, 'image')).startsWith('redis:')), 'args')).map(text)
  const arg = (flag: string): string | undefined => args[args.indexOf(flag) + 1]
  t.equal(arg('--maxmemory'), '256mb')
  t.equal(arg('--maxmemory-policy'), 'allkeys-lru')
  const exporter = containers.find((c) => text(get(c, 'image')).includes('redis_exporter'))
  t.ok(exporter !== undefined, 'a redis_exporter container')
  const exporterPort = get(list(get(exporter, 'ports'))[0], 'containerPort')
  t.equal(text(get(redis, 'spec', 'template', 'metadata', 'annotations', 'prometheus.io/port')), String(exporterPort), 'scraped on the exporter port')
})
