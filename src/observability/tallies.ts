/**
 * Per-request metrics at hit-path cost. prom-client hashes the label object on every inc() and
 * observe(), labelled child or not, and validates it; at tens of thousands of hits a second
 * that was a visible share of a hit's CPU (issue 12). Here a label set is resolved once to a
 * slot of plain numbers, the hot path only adds to it, and prom-client sees the totals when
 * the registry is scraped:
 *
 * - TallyCounter: a prom-client Counter fed from the slots by its own collect() hook (the
 *   increments since the last scrape), so the exposition is prom-client's.
 * - TallyHistogram: a prom-client Histogram whose exported values come from the slots, in the
 *   shape prom-client's own histograms export (cumulative `le` buckets, +Inf, _sum, _count),
 *   for the text format and for the cluster aggregation (getMetricsAsJSON) alike.
 *
 * Label sets are bounded by the callers (route names, outcomes, store operations).
 */
import { Counter, Histogram, type MetricObjectWithValues, type MetricType, type MetricValueWithName, type Registry } from 'prom-client'

type Labels<T extends string> = Partial<Record<T, string | number>>

export interface CounterSlot {
  /** Adds one (or n). */
  add: (n?: number) => void
}

export class TallyCounter<T extends string> {
  readonly #slots = new Map<string, { labels: Labels<T>, pending: number }>()

  constructor (o: { name: string, help: string, labelNames: readonly T[], registry: Registry }) {
    const slots = this.#slots
    o.registry.registerMetric(new Counter<T>({
      name: o.name,
      help: o.help,
      labelNames: o.labelNames,
      registers: [],
      collect () {
        for (const slot of slots.values()) {
          // Every label set is exported from its first use on, with 0 until it happens.
          this.inc(slot.labels, slot.pending)
          slot.pending = 0
        }
      }
    }))
  }

  /** The slot of one label set; look it up once and keep it. */
  slot (labels: Labels<T>): CounterSlot {
    const id = JSON.stringify(labels)
    let slot = this.#slots.get(id)
    if (slot === undefined) {
      slot = { labels: { ...labels }, pending: 0 }
      this.#slots.set(id, slot)
    }
    const s = slot
    return { add: (n = 1) => { s.pending += n } }
  }
}

export interface HistogramSlot {
  observe: (value: number) => void
}

class BucketCounts implements HistogramSlot {
  readonly labels: Record<string, string | number>
  /** counts[i]: observations in (bounds[i-1], bounds[i]]; the last one: above every bound. */
  readonly counts: Float64Array
  sum = 0
  count = 0
  readonly #bounds: readonly number[]

  constructor (labels: Record<string, string | number>, bounds: readonly number[]) {
    this.labels = labels
    this.#bounds = bounds
    this.counts = new Float64Array(bounds.length + 1)
  }

  observe (value: number): void {
    // Not a number: not counted (prom-client would throw, on the request's path).
    if (!Number.isFinite(value)) return
    const bounds = this.#bounds
    let i = 0
    while (i < bounds.length && value > (bounds[i] as number)) i++
    this.counts[i] = (this.counts[i] as number) + 1
    this.sum += value
    this.count++
  }
}

export class TallyHistogram<T extends string> {
  readonly #slots = new Map<string, BucketCounts>()
  readonly #bounds: readonly number[]

  constructor (o: { name: string, help: string, labelNames: readonly T[], buckets: readonly number[], registry: Registry }) {
    this.#bounds = [...o.buckets].sort((a, b) => a - b)
    o.registry.registerMetric(new ExportedHistogram<T>(o, this.#bounds, this.#slots))
  }

  /** The slot of one label set; look it up once and keep it. */
  slot (labels: Labels<T>): HistogramSlot {
    const id = JSON.stringify(labels)
    let slot = this.#slots.get(id)
    if (slot === undefined) {
      slot = new BucketCounts({ ...labels } as Record<string, string | number>, this.#bounds)
      this.#slots.set(id, slot)
    }
    return slot
  }
}

type Exported<T extends string> = MetricObjectWithValues<MetricValueWithName<T>>

/** The registry's view of a TallyHistogram: prom-client's histogram export, computed from the slots. */
class ExportedHistogram<T extends string> extends Histogram<T> {
  readonly #name: string
  readonly #help: string
  readonly #bounds: readonly number[]
  readonly #slots: ReadonlyMap<string, BucketCounts>

  constructor (o: { name: string, help: string, labelNames: readonly T[] }, bounds: readonly number[], slots: ReadonlyMap<string, BucketCounts>) {
    super({ name: o.name, help: o.help, labelNames: o.labelNames, buckets: [...bounds], registers: [] })
    this.#name = o.name
    this.#help = o.help
    this.#bounds = bounds
    this.#slots = slots
  }

  override async get (): Promise<Exported<T>> {
    return this.#export()
  }

  async getForPromString (): Promise<Exported<T>> {
    return this.#export()
  }

  #export (): Exported<T> {
    const name = this.#name
    const values: Array<MetricValueWithName<T>> = []
    for (const slot of this.#slots.values()) {
      const labels = slot.labels as Partial<Record<T, string | number>>
      let acc = 0
      this.#bounds.forEach((le, i) => {
        acc += slot.counts[i] as number
        values.push({ metricName: `${name}_bucket`, labels: { ...labels, le }, value: acc })
      })
      values.push({ metricName: `${name}_bucket`, labels: { ...labels, le: '+Inf' }, value: slot.count })
      values.push({ metricName: `${name}_sum`, labels, value: slot.sum })
      values.push({ metricName: `${name}_count`, labels, value: slot.count })
    }
    // prom-client's typings say MetricType is an enum; its exporters write the string.
    return { name, help: this.#help, type: 'histogram' as unknown as MetricType, values, aggregator: 'sum', collect: () => undefined }
  }
}
