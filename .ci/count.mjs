// Reads TAP 14 from stdin, echoes it, and prints "N passed, N failed" counting every
// assertion (leaf test point); subtest summary points are not counted twice.
import { createInterface } from 'node:readline'

const lines = []
const rl = createInterface({ input: process.stdin })
for await (const line of rl) {
  process.stdout.write(line + '\n')
  lines.push(line)
}
let passed = 0
let failed = 0
let skipped = 0
let prevIndent = -1
let yamlIndent = -1
for (const line of lines) {
  if (line.trim() === '') continue
  const indent = line.length - line.trimStart().length
  const text = line.trim()
  if (yamlIndent >= 0) {
    if (indent === yamlIndent && text === '...') yamlIndent = -1
    continue
  }
  if (text === '---') {
    yamlIndent = indent
    continue
  }
  const m = /^(not )?ok \d+/.exec(text)
  if (m !== null) {
    const isSummary = prevIndent >= indent + 4
    if (!isSummary) {
      if (/# (SKIP|TODO)/i.test(text)) skipped++
      else if (m[1] === undefined) passed++
      else failed++
    }
  }
  prevIndent = indent
}
const skip = skipped > 0 ? `, ${skipped} skipped` : ''
process.stdout.write(`${passed} passed, ${failed} failed${skip}\n`)
