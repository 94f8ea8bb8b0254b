import t from 'tap'
import { CACHE_NAME, formatCacheStatus, type CacheStatus } from '../../src/cache/cache-status.ts'

t.test('formatCacheStatus writes an RFC 9211 Cache-Status member', async (t) => {
  t.equal(CACHE_NAME, 'cachegate')
  const rows: Array<[string, CacheStatus, string]> = [
    ['§2 the cache name alone', {}, 'cachegate'],
    ['§2.1 hit', { hit: true, ttl: 12 }, 'cachegate; hit; ttl=12'],
    ['§2.1 hit=false is omitted', { hit: false }, 'cachegate'],
    ['§2.2 fwd=uri-miss', { fwd: 'uri-miss' }, 'cachegate; fwd=uri-miss'],
    ['§2.2 fwd=vary-miss', { fwd: 'vary-miss' }, 'cachegate; fwd=vary-miss'],
    ['§2.2 fwd=stale', { fwd: 'stale' }, 'cachegate; fwd=stale'],
    ['§2.2 fwd=bypass', { fwd: 'bypass' }, 'cachegate; fwd=bypass'],
    ['§2.3 fwd-status', { fwd: 'stale', fwdStatus: 304 }, 'cachegate; fwd=stale; fwd-status=304'],
    ['§2.4 ttl is rounded down to an integer', { hit: true, ttl: 12.9 }, 'cachegate; hit; ttl=12'],
    ['§2.4 a negative ttl (stale)', { hit: true, ttl: -3.2 }, 'cachegate; hit; ttl=-4'],
    ['§2.4 ttl=0', { hit: true, ttl: 0 }, 'cachegate; hit; ttl=0'],
    ['§2.4 a non-finite ttl is omitted (not an sf-integer)', { hit: true, ttl: Number.NaN }, 'cachegate; hit'],
    ['§2.5 stored', { fwd: 'uri-miss', stored: true }, 'cachegate; fwd=uri-miss; stored'],
    ['§2.5 stored=false is omitted', { fwd: 'uri-miss', stored: false }, 'cachegate; fwd=uri-miss'],
    ['§2.6 collapsed', { fwd: 'miss', collapsed: true }, 'cachegate; fwd=miss; collapsed'],
    ['§2.8 a token detail is written bare', { fwd: 'miss', detail: 'stale-on-arrival' }, 'cachegate; fwd=miss; detail=stale-on-arrival'],
    ['§2.8 a detail with a space is quoted', { fwd: 'miss', detail: 'no store' }, 'cachegate; fwd=miss; detail="no store"'],
    ['§2.8 a detail starting with a digit is quoted', { fwd: 'miss', detail: '5xx' }, 'cachegate; fwd=miss; detail="5xx"'],
    ['§2.8 quotes and backslashes are escaped', { fwd: 'miss', detail: 'a "b" \\c' }, 'cachegate; fwd=miss; detail="a \\"b\\" \\\\c"'],
    ['§2.8 CR and LF cannot break the header', { fwd: 'miss', detail: 'a\r\nSet-Cookie: x' }, 'cachegate; fwd=miss; detail="a??Set-Cookie: x"'],
    ['§2.8 non-ASCII becomes ? (sf-string is ASCII)', { fwd: 'miss', detail: 'café' }, 'cachegate; fwd=miss; detail="caf?"'],
    ['§2.8 an empty detail is omitted', { fwd: 'miss', detail: '' }, 'cachegate; fwd=miss'],
    ['§2 all parameters in a fixed order', { hit: true, fwd: 'stale', fwdStatus: 200, ttl: 5, stored: true, collapsed: true, detail: 'x' }, 'cachegate; hit; fwd=stale; fwd-status=200; ttl=5; stored; collapsed; detail=x']
  ]
  for (const [name, status, expected] of rows) t.equal(formatCacheStatus(status), expected, name)
})
