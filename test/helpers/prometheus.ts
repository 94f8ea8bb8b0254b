/**
 * Reads Prometheus text exposition (what GET /metrics answers) into numbers tests can assert on.
 */

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** Every sample line; HELP/TYPE comments skipped. */
export function parseExposition (text: string): Sample[] {
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$/.exec(line)
    if (m === null) throw new Error(`not a sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] as string] = (l[2] as string).replace(/\\(.)/g, '$1')
    samples.push({ name: m[1] as string, labels, value: Number(m[3]) })
  }
  return samples
}

/** The metrics of one scrape. */
export class Scrape {
  readonly samples: Sample[]
  constructor (readonly text: string) {
    this.samples = parseExposition(text)
  }

  /** Samples of a series name whose labels include `labels`. */
  series (name: string, labels: Record<string, string> = {}): Sample[] {
    return this.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  }

  /** Sum over the matching samples; 0 when there are none. */
  sum (name: string, labels: Record<string, string> = {}): number {
    return this.series(name, labels).reduce((total, s) => total + s.value, 0)
  }

  has (name: string): boolean {
    return this.samples.some((s) => s.name === name)
  }
}

export async function scrape (adminUrl: string): Promise<Scrape> {
  const res = await fetch(`${adminUrl}/metrics`)
  if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}: ${await res.text()}`)
  return new Scrape(await res.text())
}
