import fc from 'fast-check'
import t from 'tap'
import { formatDuration, formatSize, parseDuration, parseSize } from '../../src/config/duration.ts'

t.test('durations are read as milliseconds in every documented form', async (t) => {
  const table: Array<[unknown, number]> = [
    [0, 0],
    [10, 10_000],
    [1.5, 1500],
    ['10', 10_000],
    ['0.25', 250],
    ['500ms', 500],
    ['10s', 10_000],
    ['1.5s', 1500],
    ['5m', 300_000],
    ['2h', 7_200_000],
    ['1d', 86_400_000],
    ['1h30m', 5_400_000],
    ['1d2h3m4s5ms', 93_784_005],
    ['0s', 0]
  ]
  for (const [written, ms] of table) t.equal(parseDuration(written), ms, `${JSON.stringify(written)} is ${ms} ms`)
})

t.test('malformed durations are rejected, not guessed', async (t) => {
  const table: unknown[] = [
    -1, Number.NaN, Number.POSITIVE_INFINITY, '', 'ten', '10 s', '10sec', '-5s', '1w', '10S', ' 10s',
    '30m1h', '1m1m', '1h30', 's', '.5s', null, true, [], {}, '9'.repeat(400) + 'd'
  ]
  for (const written of table) t.equal(parseDuration(written), undefined, `${String(JSON.stringify(written)).slice(0, 20)} is rejected`)
})

t.test('sizes are read as bytes, kb/mb/gb in 1000s and KiB/MiB/GiB in 1024s', async (t) => {
  const table: Array<[unknown, number]> = [
    [0, 0],
    [512, 512],
    ['512', 512],
    ['512b', 512],
    ['16KiB', 16_384],
    ['8MiB', 8_388_608],
    ['1GiB', 1_073_741_824],
    ['1TiB', 1_099_511_627_776],
    ['10kb', 10_000],
    ['8mb', 8_000_000],
    ['2gb', 2_000_000_000],
    ['16kib', 16_384],
    ['8MB', 8_000_000],
    ['1.5MiB', 1_572_864],
    ['8 MiB', 8_388_608]
  ]
  for (const [written, bytes] of table) t.equal(parseSize(written), bytes, `${JSON.stringify(written)} is ${bytes} bytes`)
})

t.test('malformed sizes are rejected, not guessed', async (t) => {
  const table: unknown[] = [-1, 1.5, '1.5', '', 'big', '8 furlongs', '8MiBs', '-8MiB', 'MiB', '8  MiB', null, false, '9'.repeat(30) + 'GiB']
  for (const written of table) t.equal(parseSize(written), undefined, `${String(JSON.stringify(written))} is rejected`)
})

t.test('a formatted duration reads back as the same number of milliseconds', async (t) => {
  t.equal(formatDuration(0), '0s')
  t.equal(formatDuration(90_000), '1m30s')
  t.equal(formatDuration(86_400_500), '1d500ms')
  fc.assert(fc.property(fc.nat({ max: Number.MAX_SAFE_INTEGER }), (ms) => parseDuration(formatDuration(ms)) === ms))
})

t.test('a formatted size reads back as the same number of bytes', async (t) => {
  t.equal(formatSize(0), '0')
  t.equal(formatSize(8_388_608), '8MiB')
  t.equal(formatSize(1000), '1000')
  fc.assert(fc.property(fc.nat({ max: Number.MAX_SAFE_INTEGER }), (bytes) => parseSize(formatSize(bytes)) === bytes))
})
