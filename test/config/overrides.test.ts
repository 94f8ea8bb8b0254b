import t from 'tap'
import { ConfigError, applyOverrides, parseConfig } from '../../src/config/load.ts'

const base = parseConfig([
  'listen: { host: 127.0.0.1, port: 8080 }',
  'admin: { port: 9091, token: from-file }',
  'routes: [{ origin: "http://a" }]'
].join('\n'), 'routes.yaml', {})

const clustered = parseConfig([
  'redis: { cluster: ["r1:7000", "r2:7000"], keyPrefix: "app:", commandTimeout: 20ms }',
  'routes: [{ origin: "http://a" }]'
].join('\n'), 'routes.yaml', {})

t.test('overrides replace the listen and admin values', async (t) => {
  const config = applyOverrides(base, { port: '3000', host: '0.0.0.0', adminPort: '0', adminToken: 'from-env' })
  t.strictSame(config.listen, { host: '0.0.0.0', port: 3000 })
  t.strictSame(config.admin, { host: '127.0.0.1', port: 0, token: 'from-env', webhookSecret: undefined, webhookTolerance: 300_000 })
  t.equal(config.routes, base.routes, 'untouched sections are shared, not copied')
})

t.test('empty and absent overrides leave the file values alone', async (t) => {
  t.strictSame(applyOverrides(base, {}), base)
  t.strictSame(applyOverrides(base, { port: '', host: '', redisUrl: '', adminPort: '', adminToken: '' }), base)
  t.strictSame(applyOverrides(base, { port: undefined, adminToken: undefined }), base)
})

t.test('REDIS_URL creates the redis section with its defaults', async (t) => {
  const config = applyOverrides(base, { redisUrl: 'redis://cache:6379' })
  t.strictSame(config.redis, { url: 'redis://cache:6379', cluster: [], keyPrefix: 'cg:', commandTimeout: 50, writeTimeout: 500, breaker: { failures: 5, cooldown: 2000 } })
  t.equal(base.redis, undefined, 'the original is unchanged')
})

t.test('REDIS_URL replaces a cluster and keeps the other redis settings', async (t) => {
  const config = applyOverrides(clustered, { redisUrl: 'rediss://cache:6380' })
  t.strictSame(config.redis, { url: 'rediss://cache:6380', cluster: [], keyPrefix: 'app:', commandTimeout: 20, writeTimeout: 500, breaker: { failures: 5, cooldown: 2000 } })
})

t.test('bad overrides are a ConfigError naming each variable', async (t) => {
  const table: Array<[Parameters<typeof applyOverrides>[1], string[]]> = [
    [{ port: 'abc' }, ['PORT: expected a port number 0-65535, got "abc"']],
    [{ port: '70000' }, ['PORT: expected a port number 0-65535, got "70000"']],
    [{ port: '-1' }, ['PORT: expected a port number 0-65535, got "-1"']],
    [{ adminPort: '1.5' }, ['ADMIN_PORT: expected a port number 0-65535, got "1.5"']],
    [{ host: 'not a host' }, ['HOST: expected a host name or IP address such as "0.0.0.0", got "not a host"']],
    [{ redisUrl: 'http://cache' }, ['REDIS_URL: expected a redis:// or rediss:// URL, got "http://cache"']],
    [{ port: 'x', redisUrl: 'x' }, [
      'PORT: expected a port number 0-65535, got "x"',
      'REDIS_URL: expected a redis:// or rediss:// URL, got "x"'
    ]]
  ]
  for (const [overrides, problems] of table) {
    t.throws(() => applyOverrides(base, overrides), { name: 'ConfigError', problems, message: problems.join('\n') }, JSON.stringify(overrides))
  }
  t.throws(() => applyOverrides(base, { port: 'abc' }), ConfigError)
})

t.test('the overridden config is deeply frozen', async (t) => {
  const config = applyOverrides(base, { port: '3000', redisUrl: 'redis://cache' })
  t.ok(Object.isFrozen(config))
  t.ok(Object.isFrozen(config.listen))
  t.ok(Object.isFrozen(config.redis))
  t.ok(Object.isFrozen(config.redis?.cluster))
  t.throws(() => { Object.assign(config.listen, { port: 1 }) }, TypeError)
})
