import { Value } from '@sinclair/typebox/value'
import t from 'tap'
import { leafProblem, sectionSchemas, show } from '../../src/config/schema.ts'

t.test('every default obeys the rule of its own key', async (t) => {
  for (const [section, schema] of Object.entries(sectionSchemas)) {
    for (const [key, property] of Object.entries(schema.properties)) {
      if (!('default' in property)) continue
      const value: unknown = property.default
      t.ok(Value.Check(property, value), `${section}.${key} default ${show(value)}`)
    }
  }
})

t.test('a leaf problem names what was expected and shows what was found', async (t) => {
  const { listen } = sectionSchemas
  t.equal(leafProblem(listen.properties.port, '8080'), undefined)
  t.equal(leafProblem(listen.properties.port, 'x'), 'expected a port number 0-65535, got "x"')
  t.equal(leafProblem(listen, {}), undefined, 'not a leaf: no problem of its own')
})

t.test('values are shown in messages quoted, named or masked', async (t) => {
  const table: Array<[unknown, string]> = [
    ['ten', '"ten"'],
    ['a "quote"', '"a \\"quote\\""'],
    [5, '5'],
    [false, 'false'],
    [null, 'an empty value'],
    [[], 'an empty list'],
    [[1], 'a list'],
    [{ a: 1 }, 'a mapping'],
    ['redis://user:hunter2@host:6379', '"redis://user:***@host:6379"'],
    ['x'.repeat(100), `"${'x'.repeat(77)}..."`]
  ]
  for (const [value, shown] of table) t.equal(show(value), shown, shown)
})
