/**
 * npm run conformance [-- --config minimal|shipped] [-- --id TEST-ID] [-- --json]
 *
 * Runs the http-tests cache-tests suite against cachegate, once per configuration, and prints
 * the required / optimal / check counts and every test that did not pass (deviations marked).
 * With --id it runs one test and prints the suite's dump of its requests and responses.
 * Exit status: 0 when every required failure is a listed deviation, 1 otherwise.
 */
import { parseArgs } from 'node:util'
import { deviationFor, failures, runConfiguration, type ConfigurationResult } from './conformance.ts'
import { CONFIGURATIONS, type ConfigurationName } from './deviations.ts'

const { values } = parseArgs({
  options: {
    config: { type: 'string', multiple: true },
    id: { type: 'string' },
    json: { type: 'boolean', default: false }
  },
  strict: true
})

const selected = (values.config ?? [...CONFIGURATIONS]) as ConfigurationName[]
for (const name of selected) {
  if (!CONFIGURATIONS.includes(name)) {
    process.stderr.write(`conformance: unknown --config ${name} (expected ${CONFIGURATIONS.join(' or ')})\n`)
    process.exit(2)
  }
}

function report (result: ConfigurationResult): string {
  const { counts } = result
  const lines = [
    `== ${result.configuration} (${(result.durationMs / 1000).toFixed(0)} s)`,
    `required ${counts.required.passed}/${counts.required.total}   optimal ${counts.optimal.passed}/${counts.optimal.total}   check ${counts.check.passed}/${counts.check.total}`
  ]
  for (const r of failures(result)) {
    const deviation = deviationFor(result.configuration, r.id)
    lines.push(`  ${r.kind.padEnd(8)} ${r.outcome.padEnd(10)} ${r.id}${deviation !== undefined ? `  [deviation: ${deviation}]` : ''}`)
    if (r.message !== undefined) lines.push(`      ${r.message}`)
  }
  return lines.join('\n')
}

let unexplained = 0
const all: ConfigurationResult[] = []
for (const configuration of selected) {
  const result = await runConfiguration({ configuration, ...(values.id !== undefined ? { testId: values.id } : {}) })
  if (result.dump !== undefined) {
    process.stdout.write(`== ${configuration}\n${result.dump}\n`)
    continue
  }
  all.push(result)
  unexplained += failures(result, ['required']).filter((r) => deviationFor(configuration, r.id) === undefined).length
  if (!values.json) process.stdout.write(report(result) + '\n\n')
}
if (values.json) process.stdout.write(JSON.stringify(all, null, 2) + '\n')
if (values.id === undefined && unexplained > 0) {
  process.stdout.write(`${unexplained} required test(s) failed without a listed deviation (test/conformance/deviations.ts)\n`)
  process.exitCode = 1
}
