// Tallies must export exactly what prom-client's own Counter and Histogram export for the same
// observations: the text a Prometheus scrapes and the JSON the cluster primary aggregates.
import t from 'tap'
import { AggregatorRegistry, Counter, Histogram, Registry } from 'prom-client'
import { TallyCounter, TallyHistogram } from '../../src/observability/tallies.ts'

const BUCKETS = [0.001, 0.01, 0.1, 1]
const OBSERVED: Array<[string, number]> = [
  ['hit', 0.0004], ['hit', 0.001], ['hit', 0.002], ['miss', 0.5], ['miss', 3], ['hit', 0.09], ['miss', 0.1]
]

function reference (): Registry {
  const registry = new Registry()
  const counter = new Counter({ name: 'x_requests_total', help: 'requests', labelNames: ['route', 'outcome'], registers: [registry] })
  const histogram = new Histogram({ name: 'x_duration_seconds', help: 'latency', labelNames: ['outcome'], buckets: BUCKETS, registers: [registry] })
  for (const [outcome, v] of OBSERVED) {
    counter.inc({ route: 'r', outcome })
    histogram.observe({ outcome }, v)
  }
  return registry
}

function tallied (): { registry: Registry, counter: TallyCounter<'route' | 'outcome'>, histogram: TallyHistogram<'outcome'> } {
  const registry = new Registry()
  const counter = new TallyCounter({ name: 'x_requests_total', help: 'requests', labelNames: ['route', 'outcome'], registry })
  const histogram = new TallyHistogram({ name: 'x_duration_seconds', help: 'latency', labelNames: ['outcome'], buckets: BUCKETS, registry })
  for (const [outcome, v] of OBSERVED) {
    counter.slot({ route: 'r', outcome }).add()
    histogram.slot({ outcome }).observe(v)
  }
  return { registry, counter, histogram }
}

/** Lines of the exposition, order-independent (label order inside braces normalized). */
function lines (text: string): string[] {
  return text.split('\n').filter((l) => l !== '').map((l) => l.replace(/\{([^}]*)\}/, (_m, inner: string) => `{${inner.split(',').sort().join(',')}}`)).sort()
}

t.test('the text exposition is the same as prom-client\'s own counter and histogram', async (t) => {
  const { registry } = tallied()
  t.strictSame(lines(await registry.metrics()), lines(await reference().metrics()))
})

t.test('a second scrape counts only once what was added between scrapes', async (t) => {
  const { registry, counter, histogram } = tallied()
  await registry.metrics()
  counter.slot({ route: 'r', outcome: 'hit' }).add(2)
  histogram.slot({ outcome: 'hit' }).observe(0.005)
  const text = await registry.metrics()
  t.match(text, /x_requests_total\{route="r",outcome="hit"\} 6\n/, '4 hits, then 2 more')
  t.match(text, /x_duration_seconds_count\{outcome="hit"\} 5\n/)
  t.match(text, /x_duration_seconds_bucket\{(le="0.01",outcome="hit"|outcome="hit",le="0.01")\} 4\n/, '0.0004, 0.001, 0.002, 0.005 are ≤ 0.01')
})

t.test('the cluster primary aggregates tallies as it does prom-client metrics', async (t) => {
  const a = tallied()
  const b = tallied()
  const aggregated = await AggregatorRegistry.aggregate([await a.registry.getMetricsAsJSON(), await b.registry.getMetricsAsJSON()]).metrics()
  const expected = await AggregatorRegistry.aggregate([await reference().getMetricsAsJSON(), await reference().getMetricsAsJSON()]).metrics()
  t.strictSame(lines(aggregated), lines(expected))
  t.match(aggregated, /x_requests_total\{route="r",outcome="miss"\} 6\n/, 'three misses on each worker')
})

t.test('a value that is not a number is not counted, and nothing throws on the request path', async (t) => {
  const { registry, histogram } = tallied()
  const slot = histogram.slot({ outcome: 'hit' })
  slot.observe(Number.NaN)
  slot.observe(Number.POSITIVE_INFINITY)
  t.match(await registry.metrics(), /x_duration_seconds_count\{outcome="hit"\} 4\n/)
})
