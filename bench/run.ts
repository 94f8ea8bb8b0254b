/**
 * `npm run bench`: the hit benchmark, the stampede benchmark, then the hit path at the limit
 * (issue 12: wrk over many keys, allocations, heap soak, one-key stampede); prints the tables and
 * writes them as Markdown to bench/results/latest.md (git-ignored) for the README.
 */
import { writeFileSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { hitSettings, runHit } from './hit.ts'
import { limitSettings, runLimit } from './limit.ts'
import { pinSelf, ROOT } from './lib/processes.ts'
import { renderMarkdown, renderText, type Table } from './lib/table.ts'
import { runStampede, stampedeSettings } from './stampede.ts'

const started = performance.now()
const log = (line: string): void => { process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(0).padStart(3)}s] ${line}\n`) }

// Read every knob first: a bad value fails before anything starts.
const hit = hitSettings()
const stampede = stampedeSettings()
const limit = limitSettings()
const cores = pinSelf()
const cpuModel = cpus()[0]?.model.trim() ?? 'unknown CPU'
const machine = `${cpus().length} × ${cpuModel}, Node ${process.version}, ${process.platform}/${process.arch}`
log(`machine: ${machine}; load generator on CPU ${cores.pinned ? cores.others : 'any (not pinned)'}`)

const tables: Table[] = []
tables.push(await runHit(hit, log))
process.stdout.write('\n' + renderText(tables[0] as Table) + '\n')
tables.push(await runStampede(stampede, log))
process.stdout.write('\n' + renderText(tables[1] as Table) + '\n')
// Issue 12 last: it moves this process to the first CPU and the servers to the last.
const atLimit = await runLimit(limit, log)
for (const t of [atLimit.goals, ...atLimit.tables]) {
  tables.push(t)
  process.stdout.write('\n' + renderText(t) + '\n')
}

const markdown = [
  '## Benchmarks',
  '',
  `Measured with \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}: ${machine}. ` +
    'Every contender ran in the same run; compare ratios, not absolute numbers (see bench/README.md).',
  '',
  ...tables.map(renderMarkdown)
].join('\n')
await mkdir(join(ROOT, 'bench', 'results'), { recursive: true })
const file = join(ROOT, 'bench', 'results', 'latest.md')
writeFileSync(file, markdown)
log(`wrote ${file}`)
