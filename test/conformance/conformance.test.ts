// The http-tests cache-tests suite (http-cache-tests 0.4.5) against a real cachegate process,
// with the minimal configuration and with the shipped routes.yaml. The suite's own pauses are
// real time (3 s each); the two configurations take about a minute.
import t from 'tap'
import { deviationFor, failures, runConfiguration, type ConfigurationResult } from './conformance.ts'
import { DEVIATIONS, STALE_WINDOWS } from './deviations.ts'

// Two configurations of ~30 s each; on a loaded CI machine that can pass tap's
// default 120 s per file, so this file allows itself five minutes.
t.setTimeout(300_000)

const REQUIRED_GOAL = 158
// The goal, met: a change that lowers it is a regression. The optimal tests still
// failing are deliberate or need range combining (README, "Conformance").
const OPTIMAL_GOAL = 88

// One after the other: run at once on a 2-core machine, timing-sensitive tests (max-age=2, then
// a request at once, with a Date of one-second granularity) lose their freshness to the load.
const minimal = await runConfiguration({ configuration: 'minimal' })
const shipped = await runConfiguration({ configuration: 'shipped' })

function summary (r: ConfigurationResult): string {
  const c = r.counts
  return `${r.configuration}: required ${c.required.passed}/${c.required.total}, optimal ${c.optimal.passed}/${c.optimal.total}, check ${c.check.passed}/${c.check.total}`
}

function unexplained (r: ConfigurationResult): string[] {
  return failures(r, ['required']).filter((f) => deviationFor(r.configuration, f.id) === undefined).map((f) => `${f.id} (${f.outcome}: ${f.message ?? ''})`)
}

t.test('the suite ran every test against both configurations', async (t) => {
  for (const r of [minimal, shipped]) {
    t.comment(summary(r))
    t.equal(r.results.filter((x) => x.outcome === 'untested').length, 0, `${r.configuration}: no test without a result`)
    t.ok(r.counts.required.total > 150, `${r.configuration}: the required tests were counted (${r.counts.required.total})`)
  }
})

t.test(`the minimal configuration passes at least ${REQUIRED_GOAL} required and ${OPTIMAL_GOAL} optimal tests`, async (t) => {
  t.ok(minimal.counts.required.passed >= REQUIRED_GOAL, `required ${minimal.counts.required.passed}/${minimal.counts.required.total}`)
  t.ok(minimal.counts.optimal.passed >= OPTIMAL_GOAL, `optimal ${minimal.counts.optimal.passed}/${minimal.counts.optimal.total}`)
})

t.test('no required test fails without a listed deviation, in either configuration', async (t) => {
  t.same(unexplained(minimal), [], 'minimal')
  t.same(unexplained(shipped), [], 'shipped routes.yaml')
})

t.test('the shipped routes.yaml adds no required failure except through its stale windows', async (t) => {
  const shippedOnly = DEVIATIONS.filter((d) => d.configurations.includes('shipped') && !d.configurations.includes('minimal'))
  for (const d of shippedOnly) t.equal(d.reason, STALE_WINDOWS, `${d.id} is a shipped-only deviation only for the stale windows`)
  const minimalFailures = new Set(failures(minimal, ['required']).map((f) => f.id))
  const added = failures(shipped, ['required']).filter((f) => !minimalFailures.has(f.id))
  for (const f of added) t.equal(deviationFor('shipped', f.id), STALE_WINDOWS, `${f.id} fails only with the shipped config: ${f.message ?? ''}`)
})

t.test('every deviation names a test of the suite, with a reason', async (t) => {
  const ids = new Set(minimal.results.map((r) => r.id))
  for (const d of DEVIATIONS) {
    t.ok(ids.has(d.id), `${d.id} is a test id`)
    t.ok(d.reason.length > 20, `${d.id} has a reason`)
    for (const c of d.configurations) {
      const result = (c === 'minimal' ? minimal : shipped).results.find((r) => r.id === d.id)
      // A deviation that passes again is worth removing; it does not fail the build.
      if (result?.outcome === 'pass') t.comment(`deviation ${d.id} passes in ${c}: remove it from deviations.ts`)
    }
  }
})
