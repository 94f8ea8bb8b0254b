// The background refresh on its own (a recording host in place of the read-through, local
// locks, a manual clock): what it revalidates, and under which variant.
import t from 'tap'
import type { CacheEntry } from '../../src/cache/entry.ts'
import { LANGUAGE_ALIAS, variantId } from '../../src/cache/vary.ts'
import { ManualClock } from '../../src/clock.ts'
import { LocalLocks } from '../../src/coordination/locks.ts'
import { Refresher, type RefreshHost } from '../../src/lifecycle/refresh.ts'
import { Tasks } from '../../src/lifecycle/tasks.ts'
import type { Found } from '../../src/lifecycle/types.ts'
import { parts } from './parts.ts'

function stale (url: CacheEntry['url'], vary: Record<string, string | null>, body: string): CacheEntry {
  return { url, status: 200, headers: { vary: 'accept-language', 'content-language': 'de', etag: `"${body}"` }, body: Buffer.from(body), requestTime: 0, responseTime: 0, initialAge: 0, freshness: 1000, staleWhileRevalidate: 60_000, staleIfError: 0, vary, tags: [], mustRevalidate: false, noCache: false, invalidatedAt: 0 }
}

t.test('a background refresh revalidates the entry it finds under that entry\'s own variant, never the stale one\'s', async (t) => {
  const p = parts(t, 'http://127.0.0.1:9')
  const clock = new ManualClock(10_000)
  const req = p.request('/l', { 'accept-language': 'fr;q=0.5, de' })
  const de = { 'accept-language': 'de' }
  const alias = { ...de, [LANGUAGE_ALIAS]: 'de' }
  const served = stale(req.key, alias, 'alias')
  const exact = stale(req.key, de, 'exact')
  const seen: Array<{ variant: Found['variant'], body: string }> = []
  const host: RefreshHost = {
    // Meanwhile the answer to de itself was stored: the look now finds it first.
    find: async () => ({ entry: exact, vary: ['accept-language'], variant: variantId(de), values: de, storeDetail: undefined }),
    refetch: async () => { throw new Error('not asked') },
    revalidate: async (_req, found, entry) => {
      seen.push({ variant: found.variant, body: entry.body.toString() })
      return { kind: 'entry', entry, age: 0, cacheStatus: { fwd: 'stale', fwdStatus: 304 }, outcome: 'revalidated' }
    }
  }
  const tasks = new Tasks()
  const refresher = new Refresher({ host, locks: new LocalLocks(clock), tasks, clock, onStoreError: () => {}, onEvent: () => {} })
  refresher.inBackground(req, served)
  await tasks.settled()
  t.same(seen, [{ variant: variantId(de), body: 'exact' }], 'the answer to de under its own variant, not the alias\'s')

  const aliasOnly: RefreshHost = { ...host, find: async () => ({ entry: null, vary: ['accept-language'], variant: variantId({ 'accept-language': 'de,fr;q=0.5' }), values: {}, storeDetail: undefined }) }
  const again = new Refresher({ host: aliasOnly, locks: new LocalLocks(clock), tasks, clock, onStoreError: () => {}, onEvent: () => {} })
  again.inBackground(req, served)
  await tasks.settled()
  t.same(seen[1], { variant: variantId(alias), body: 'alias' }, 'found nothing now: the stale entry, under its own variant')
})
