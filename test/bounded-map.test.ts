import t from 'tap'
import { BoundedMap } from '../src/bounded-map.ts'

t.test('past maxEntries the least recently used entry is evicted', async (t) => {
  const m = new BoundedMap<string, number>({ maxEntries: 3 })
  m.set('a', 1).set('b', 2).set('c', 3)
  t.equal(m.get('a'), 1, 'reading a makes it the most recently used')
  m.set('d', 4)
  t.same([...m.keys()], ['c', 'a', 'd'])
  t.equal(m.size, 3)
  t.equal(m.stats().evictions, 1)
})

t.test('past maxBytes the oldest entries are evicted until the bytes fit', async (t) => {
  const m = new BoundedMap<string, string>({ maxEntries: 1000, maxBytes: 1000 })
  for (let i = 0; i < 100; i++) m.set(`k${i}`, 'x'.repeat(100))
  t.ok(m.bytes <= 1000, `bytes ${m.bytes} within 1000`)
  t.ok(m.size > 0 && m.size < 100)
  t.ok(m.has('k99'), 'the newest entry is kept')
  t.notOk(m.has('k0'), 'the oldest entry is gone')
})

t.test('a value larger than maxBytes on its own is not stored and evicts nothing', async (t) => {
  const m = new BoundedMap<string, string>({ maxEntries: 10, maxBytes: 500 })
  m.set('small', 'x')
  m.set('huge', 'y'.repeat(10_000))
  t.notOk(m.has('huge'))
  t.ok(m.has('small'))
})

t.test('replacing, deleting, pruning and clearing keep the byte count exact', async (t) => {
  const m = new BoundedMap<string, string>({ maxEntries: 10, sizeOf: (v) => v.length })
  m.set('a', 'xxxx')
  const one = m.bytes
  m.set('a', 'xxxx')
  t.equal(m.bytes, one, 'a replaced value is not counted twice')
  m.set('b', 'yy')
  m.prune((v) => v === 'yy')
  t.equal(m.bytes, one)
  t.ok(m.delete('a'))
  t.notOk(m.delete('a'))
  t.equal(m.bytes, 0)
  m.set('c', 'z')
  m.clear()
  t.equal(m.size, 0)
  t.equal(m.bytes, 0)
})

t.test('peek does not change the eviction order', async (t) => {
  const m = new BoundedMap<string, number>({ maxEntries: 2 })
  m.set('a', 1).set('b', 2)
  t.equal(m.peek('a'), 1)
  m.set('c', 3)
  t.notOk(m.has('a'))
})

t.test('a bound below one entry is refused', async (t) => {
  t.throws(() => new BoundedMap({ maxEntries: 0 }), RangeError)
})
