import type * as FastifyModule from 'fastify'
import type { RouteOptions } from 'fastify'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { MAX_INTEGER } from '../app/db/schema.js'
import { basicAuth, documentRow, postForm, startTestSite, type TestSite } from './helpers/app.js'
import { DATABASE_KINDS } from './helpers/databases.js'
import { backToNormal, logCount, logRowsAfter, putState, stateRow } from './helpers/maintenance.js'
import { addPrincipals, basicOf, signedInBrowser } from './helpers/principals.js'

/** Every route of every app this file builds, as registered (with its schemas), seen by an `onRoute` hook added first. */
const registered: RouteOptions[] = vi.hoisted(() => [])
vi.mock('fastify', async (importOriginal) => {
  const fastify = await importOriginal<typeof FastifyModule>()
  const factory = fastify.default as unknown as (...args: unknown[]) => FastifyModule.FastifyInstance
  const recording = (...args: unknown[]) => factory(...args).addHook('onRoute', (route) => { registered.push(route) })
  return { ...fastify, default: Object.assign(recording, fastify.default) }
})

const BOSS = basicOf('maintainer')
const ROOT = basicOf('emergency')

/**
 * Bad input gets a 400 that names the problem, never a 500, on both databases: numbers past
 * what the database holds (or past what a double holds: `1e309`), text the database cannot
 * store (NUL), and a malformed maintenance change, which is still audited like every attempt.
 */
describe.each(DATABASE_KINDS)('bad input on %s', (kind) => {
  let site: TestSite

  beforeAll(async () => {
    site = await startTestSite(kind)
    await addPrincipals(site, ['maintainer', 'member', 'emergency'])
  })
  afterAll(async () => { await site.close() })
  afterEach(async () => { await backToNormal(site.app, ROOT) })

  it.each([
    ['GET', '/api/search?q=x&limit=1e309', 'limit'],
    ['GET', '/api/search?q=x&limit=-1e309', 'limit'],
    ['GET', '/api/docs?offset=1e309', 'offset'],
    ['GET', '/api/docs?offset=99999999999999999999', 'offset'],
    ['GET', '/api/docs?limit=Infinity', 'limit'],
    ['DELETE', '/api/docs/some-doc?expectedVersion=2147483648', 'expectedVersion'],
    ['DELETE', '/api/maintenance/windows/2147483648', 'id'],
  ] as const)('%s %s answers 400 naming %s', async (method, url, field) => {
    const response = await site.app.inject({ method, url, headers: { authorization: BOSS } })
    expect(response.statusCode, response.body).toBe(400)
    expect(response.json()).toMatchObject({ code: 'QUIESCE_INVALID_INPUT', fields: { [field]: expect.any(String) } })
  })

  it.each(['limit=1e309', 'before=1e309', 'before=2147483648', 'limit=Infinity'])('GET /api/maintenance/log?%s answers 400', async (query) => {
    const response = await site.app.inject({ url: `/api/maintenance/log?${query}`, headers: { authorization: BOSS } })
    expect(response.statusCode, response.body).toBe(400)
    expect(response.json().code).toBe('QUIESCE_INVALID_INPUT')
  })

  it.each(['2147483648', '99999999999999999999', '1e309'])('GET /api/tasks/%s is not found, and the control panel page too', async (id) => {
    for (const url of [`/api/tasks/${id}`, `/manage/tasks/${id}`]) {
      const response = await site.app.inject({ url, headers: { authorization: BOSS } })
      expect(response.statusCode, url).toBe(404)
    }
  })

  it.each([
    ['an expectedVersion past what the database holds', { mode: 'concurrent', expectedVersion: 2147483648 }, /expectedVersion/],
    ['a fractional expectedVersion', { mode: 'concurrent', expectedVersion: 1.5 }, /expectedVersion/],
    ['a reason holding NUL', { mode: 'concurrent', expectedVersion: 'current', reason: 'a\u0000b' }, /control characters/],
    ['a reason holding a line break', { mode: 'concurrent', expectedVersion: 'current', reason: 'one\ntwo' }, /control characters/],
    ['a mode that is a number', { mode: 42, expectedVersion: 'current' }, /mode/],
    ['a reason that is an object', { mode: 'concurrent', expectedVersion: 'current', reason: { a: 1 } }, /reason/],
  ] as const)('PUT /api/maintenance with %s answers 400 and is audited as refused', async (_what, given, message) => {
    const before = await stateRow(site.database)
    const body = { ...given, expectedVersion: given.expectedVersion === 'current' ? before.version : given.expectedVersion }
    const logged = await logCount(site.database)
    const response = await putState(site.app, BOSS, body)
    expect(response.statusCode, response.body).toBe(400)
    expect(response.json().message).toMatch(message)
    expect(await stateRow(site.database)).toEqual(before)
    const [row, ...more] = await logRowsAfter(site.database, logged)
    expect(more).toEqual([])
    expect(row).toMatchObject({ actor: 'boss', channel: 'api', outcome: 'refused', new_version: null })
    expect(row!.detail).toMatch(message)
    // What was attempted is kept, in a form both databases store.
    const reason = (given as { reason?: unknown }).reason
    if (typeof reason === 'string') expect(row!.reason).toBe(reason.replaceAll('\u0000', '\ufffd').replaceAll('\n', '\ufffd'))
    expect(row!.expected_version).toBe(Number.isInteger(body.expectedVersion) && body.expectedVersion <= MAX_INTEGER ? body.expectedVersion : 0)
  })

  it('PUT /api/maintenance with a body that is not an object answers 400 and is audited', async () => {
    const logged = await logCount(site.database)
    const response = await site.app.inject({ method: 'PUT', url: '/api/maintenance', headers: { authorization: BOSS, 'content-type': 'application/json' }, payload: '[1,2]' })
    expect(response.statusCode).toBe(400)
    expect(await logRowsAfter(site.database, logged)).toMatchObject([{ actor: 'boss', outcome: 'refused' }])
  })

  it('the control panel form with a version that is not a number answers 400 and is audited', async () => {
    const boss = await signedInBrowser(site.app, 'maintainer')
    const logged = await logCount(site.database)
    const response = await postForm(site.app, boss, '/manage/maintenance', { mode: 'concurrent', reason: 'x', expectedVersion: 'abc' })
    expect(response.statusCode).toBe(400)
    expect(response.body).toContain('expectedVersion must be a whole number')
    expect(await logRowsAfter(site.database, logged)).toMatchObject([{ actor: 'boss', channel: 'web', outcome: 'refused', expected_version: 0 }])
  })

  it('a scheduled window whose reason holds NUL is refused with 400', async () => {
    const response = await site.app.inject({
      method: 'POST',
      url: '/api/maintenance/windows',
      headers: { authorization: BOSS },
      payload: { mode: 'concurrent', reason: 'a\u0000b', startsAt: new Date(Date.now() + 3_600_000).toISOString(), endsAt: new Date(Date.now() + 7_200_000).toISOString() },
    })
    expect(response.statusCode, response.body).toBe(400)
    expect(response.json().message).toMatch(/control characters/)
  })

  it.each([
    ['title', { title: 'a\u0000b', body: 'text' }],
    ['body', { title: 'Fine', body: 'a\u0000b' }],
    ['title', { title: 'two\nlines', body: 'text' }],
  ] as const)('a document whose %s holds a control character is refused with 400, by the API and by the form', async (field, input) => {
    const api = await site.app.inject({ method: 'PUT', url: '/api/docs/control-chars', headers: { authorization: basicOf('member') }, payload: input })
    expect(api.statusCode, api.body).toBe(400)
    expect(api.json().fields).toHaveProperty(field)
    const ann = await signedInBrowser(site.app, 'member')
    const form = await postForm(site.app, ann, '/docs', { slug: 'control-chars', ...input })
    expect(form.statusCode).toBe(400)
    expect(await documentRow(site.database, 'control-chars')).toBeUndefined()
  })

  it('a document body keeps its tabs and line breaks', async () => {
    const response = await site.app.inject({ method: 'PUT', url: '/api/docs/tabs-and-lines', headers: { authorization: basicOf('member') }, payload: { title: 'Tabs', body: 'a\tb\nc\r\nd' } })
    expect(response.statusCode).toBe(201)
    expect((await documentRow(site.database, 'tabs-and-lines'))?.body).toBe('a\tb\nc\nd')
  })

  it('a sign-in with a NUL in the name is a wrong name, not an unreadable user list', async () => {
    const form = await site.app.inject({ url: '/login' })
    const cookie = form.cookies.find((c) => c.name === 'quiesce.sid')!
    const csrf = /name="_csrf" value="([^"]+)"/.exec(form.body)![1]!
    const response = await site.app.inject({
      method: 'POST',
      url: '/login',
      headers: { cookie: `quiesce.sid=${cookie.value}` },
      payload: { username: 'bo\u0000ss', password: 'boss-password', _csrf: csrf },
    })
    expect(response.statusCode).toBe(401)
    expect(response.body).toContain('Wrong user name or password.')
    const basic = await site.app.inject({ url: '/api/instances', headers: { authorization: basicAuth('bo\u0000ss', 'boss-password') } })
    expect(basic.statusCode).toBe(401)
  })
})

describe('route schemas', () => {
  it('bound every integer by what the database holds, on every route the app registers', async () => {
    const site = await startTestSite('sqlite')
    await site.close()
    const unbounded: string[] = []
    for (const route of registered) {
      for (const part of ['querystring', 'params', 'body'] as const) {
        for (const [path, property] of integerProperties(route.schema?.[part])) {
          if (typeof property.maximum !== 'number' || property.maximum > MAX_INTEGER) unbounded.push(`${[route.method].flat().join(',')} ${route.url} ${part}${path}`)
        }
      }
    }
    expect(registered.length).toBeGreaterThan(20)
    expect(unbounded).toEqual([])
  })
})

function integerProperties (schema: unknown, path = ''): Array<[string, { maximum?: unknown }]> {
  const node = schema as { type?: unknown, properties?: Record<string, unknown>, items?: unknown } | undefined
  if (node === undefined || node === null || typeof node !== 'object') return []
  const found: Array<[string, { maximum?: unknown }]> = []
  if (node.type === 'integer') found.push([path, node as { maximum?: unknown }])
  for (const [key, child] of Object.entries(node.properties ?? {})) found.push(...integerProperties(child, `${path}/${key}`))
  if (node.items !== undefined) found.push(...integerProperties(node.items, `${path}[]`))
  return found
}
