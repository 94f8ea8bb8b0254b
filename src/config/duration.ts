/**
 * Durations and sizes as written in routes.yaml, converted to milliseconds and bytes.
 *
 * Durations: a non-negative number is seconds (`1.5` is 1500 ms); a string is either such a
 * number or unit parts largest first: "500ms", "10s", "5m", "2h", "1d", "1h30m".
 * Sizes: a non-negative integer is bytes; a string is a number with an optional unit, where
 * kb/mb/gb/tb count in 1000s and KiB/MiB/GiB/TiB in 1024s ("16KiB", "10kb", "8 MiB"); unit
 * letters are case-insensitive.
 *
 * The parsers return undefined instead of throwing, so the loader can phrase the problem and
 * go on collecting others. Results are whole numbers within Number.MAX_SAFE_INTEGER.
 */

/** setTimeout's ceiling (2^31 - 1 ms, about 24.8 days): Node fires longer delays at once. */
export const MAX_TIMER_MS = 2_147_483_647

const DURATION_UNITS = [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000], ['ms', 1]] as const
const UNIT_RANK = new Map<string, number>(DURATION_UNITS.map(([unit], rank) => [unit, rank]))
const UNIT_MS = new Map<string, number>(DURATION_UNITS)
// 'ms' before 'm' and 's' so "5ms" is not read as 5 minutes followed by a stray "s".
const DURATION_PART = /(\d+(?:\.\d+)?)(ms|d|h|m|s)/y
const DECIMAL = /^\d+(?:\.\d+)?$/

const SIZE = /^(\d+(?:\.\d+)?) ?([a-z]*)$/i
const SIZE_UNITS = new Map<string, number>([
  ['', 1], ['b', 1],
  ['kb', 1e3], ['mb', 1e6], ['gb', 1e9], ['tb', 1e12],
  ['kib', 2 ** 10], ['mib', 2 ** 20], ['gib', 2 ** 30], ['tib', 2 ** 40]
])

function whole (value: number): number | undefined {
  const rounded = Math.round(value)
  return Number.isSafeInteger(rounded) ? rounded : undefined
}

/** Milliseconds for a duration written as seconds (number) or a duration string; undefined if malformed. */
export function parseDuration (value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? whole(value * 1000) : undefined
  if (typeof value !== 'string' || value === '') return undefined
  if (DECIMAL.test(value)) return whole(Number(value) * 1000)
  let total = 0
  let position = 0
  let lastRank = -1
  while (position < value.length) {
    DURATION_PART.lastIndex = position
    const part = DURATION_PART.exec(value)
    if (part === null) return undefined
    const [, amount = '', unit = ''] = part
    const rank = UNIT_RANK.get(unit) ?? -1
    // Largest unit first, each at most once: "1h30m", not "30m1h" or "1m1m".
    if (rank <= lastRank) return undefined
    lastRank = rank
    total += Number(amount) * (UNIT_MS.get(unit) ?? Number.NaN)
    position = DURATION_PART.lastIndex
  }
  return whole(total)
}

/** Bytes for a size written as an integer or a size string; undefined if malformed. */
export function parseSize (value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined
  if (typeof value !== 'string') return undefined
  const match = SIZE.exec(value)
  if (match === null) return undefined
  const [, amount = '', unit = ''] = match
  const multiplier = SIZE_UNITS.get(unit.toLowerCase())
  if (multiplier === undefined) return undefined
  // A fraction of a byte means nothing; a fraction of a larger unit is fine ("1.5MiB").
  if (multiplier === 1 && !Number.isInteger(Number(amount))) return undefined
  return whole(Number(amount) * multiplier)
}

/** The shortest duration string that parseDuration reads back as `ms`: 90_000 -> "1m30s". */
export function formatDuration (ms: number): string {
  if (!Number.isSafeInteger(ms) || ms < 0) throw new RangeError(`not a duration in ms: ${ms}`)
  if (ms === 0) return '0s'
  let rest = ms
  let text = ''
  for (const [unit, size] of DURATION_UNITS) {
    const count = Math.floor(rest / size)
    if (count > 0) {
      text += `${count}${unit}`
      rest -= count * size
    }
  }
  return text
}

/** A size string that parseSize reads back as `bytes`, in the largest whole binary unit: 8388608 -> "8MiB". */
export function formatSize (bytes: number): string {
  if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError(`not a size in bytes: ${bytes}`)
  for (const unit of ['TiB', 'GiB', 'MiB', 'KiB'] as const) {
    const size = SIZE_UNITS.get(unit.toLowerCase()) ?? 1
    if (bytes !== 0 && bytes % size === 0) return `${bytes / size}${unit}`
  }
  return String(bytes)
}
