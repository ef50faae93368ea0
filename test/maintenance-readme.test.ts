import SQLite from 'better-sqlite3'
import Fastify, { type FastifyInstance } from 'fastify'
import { Kysely, Migrator, SqliteDialect } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import maintenance, { kyselyMaintenanceStore, MAINTENANCE_ERRORS, maintenanceMigrations, type CommitSeams, type MaintenanceTables } from '../app/maintenance/index.js'
import { COMMIT_SEAMS, OPTIONS } from '../app/maintenance/options.js'
import { createTestDatabase, type TestDatabase } from './helpers/databases.js'
import { codeName, generatedPart, optionsTable, readReadme, tableRows } from './helpers/maintenance-readme.js'

const README = readReadme()

type AnyErrorConstructor = new (...args: unknown[]) => Error & { code: string, statusCode: number }

/**
 * app/maintenance/README.md against the code: what it lists is what the plugin has. The options
 * table is generated (`npx tsx test/helpers/maintenance-readme.ts` rewrites it); the other
 * tables are written by hand, and each name in them is checked.
 */
describe('the maintenance plugin\'s README', () => {
  let testDatabase: TestDatabase
  let db: Kysely<MaintenanceTables>
  let app: FastifyInstance
  const seamsUsed: string[] = []
  const decorators: string[] = []
  const routes: Array<{ method: string, url: string, alwaysOpen: boolean }> = []

  beforeAll(async () => {
    testDatabase = await createTestDatabase('sqlite')
    db = new Kysely<MaintenanceTables>({ dialect: new SqliteDialect({ database: new SQLite(testDatabase.url.kind === 'sqlite' ? testDatabase.url.file : '') }) })
    const { error } = await new Migrator({ db, provider: { getMigrations: async () => maintenanceMigrations } }).migrateToLatest()
    expect(error).toBeUndefined()

    app = Fastify()
    // What the plugin decorates the host's instance with (its routes' own context aside).
    for (const kind of ['decorate', 'decorateRequest', 'decorateReply'] as const) {
      const decorate = app[kind]
      const host = app
      const recording = function (this: FastifyInstance, name: string | symbol, ...rest: unknown[]) {
        if (this === host) decorators.push(`${kind}:${String(name)}`)
        return Reflect.apply(decorate, this, [name, ...rest])
      }
      Reflect.set(app, kind, recording)
    }
    app.addHook('onRoute', (route) => {
      for (const method of [route.method].flat()) routes.push({ method, url: route.url, alwaysOpen: route.config?.maintenance === 'always-open' })
    })
    const seams: Required<CommitSeams> = {
      onBeforeWrites () { seamsUsed.push('onBeforeWrites') },
      onBeforeRetry () { seamsUsed.push('onBeforeRetry') },
      onBeforeCommit () { seamsUsed.push('onBeforeCommit') },
      stampCommits () { seamsUsed.push('stampCommits') },
      guardAtBegin () { seamsUsed.push('guardAtBegin') },
    }
    await app.register(maintenance, { store: kyselyMaintenanceStore(db), unitOfWork: seams, principalOf: () => null, instanceId: 'readme-test', scheduleMs: 0 })
    await app.ready()
  })
  afterAll(async () => {
    await app?.close()
    await db?.destroy()
    await testDatabase?.drop()
  })

  it('has the options table generated from the options\' checks (npx tsx test/helpers/maintenance-readme.ts)', () => {
    expect(generatedPart(README, 'options')).toBe(optionsTable())
    expect(Object.keys(OPTIONS).length).toBeGreaterThan(5)
  })

  it('lists the seams the plugin hooks into, and which of them it needs', () => {
    const rows = tableRows(README, '## Seams')
    expect(rows.map(([seam]) => codeName(seam ?? ''))).toEqual(Object.keys(COMMIT_SEAMS))
    const required = new Map(Object.entries(COMMIT_SEAMS))
    for (const [seam, needed] of rows) expect(needed, seam).toBe(required.get(codeName(seam ?? '')) === true ? 'required' : 'optional')
    // Given all five, it uses all but onBeforeWrites: the built-in store has a versionStamp and a
    // stateAtBegin, so the guard's read goes with the commit's BEGIN instead.
    expect(seamsUsed.toSorted()).toEqual(Object.keys(COMMIT_SEAMS).filter((seam) => seam !== 'onBeforeWrites').toSorted())
  })

  it('lists the decorators the plugin adds to the host, and each member of fastify.maintenance', () => {
    const listed = tableRows(README, '## Decorators').map(([decorator]) => codeName(decorator ?? ''))
    expect(listed).toEqual(['fastify.maintenance'])
    expect(decorators).toEqual(['decorate:maintenance'])
    expect(app.hasDecorator('maintenance')).toBe(true)
    const members = tableRows(README, '### `fastify.maintenance`').map(([member]) => codeName(member ?? ''))
    expect(members).toEqual(Object.keys(app.maintenance))
  })

  it('lists every route the plugin registers, and which are open in every mode', () => {
    const listed = tableRows(README, '## Routes').map(([route, open]) => ({ route: codeName(route ?? ''), alwaysOpen: open === 'yes' }))
    const registered = routes.filter(({ method }) => method !== 'HEAD').map(({ method, url, alwaysOpen }) => ({ route: `${method} ${url}`, alwaysOpen }))
    expect(listed).toEqual(registered)
    // "Every GET but the event stream answers HEAD too."
    const heads = routes.filter(({ method }) => method === 'HEAD').map(({ url }) => url)
    expect(heads).toEqual(routes.filter(({ method, url }) => method === 'GET' && url !== '/api/maintenance/events').map(({ url }) => url))
  })

  it('lists every error code of the plugin with its status', () => {
    const listed = tableRows(README, '## Errors').map(([code, status]) => [codeName(code ?? ''), Number(status)])
    const registered = Object.entries(MAINTENANCE_ERRORS).map(([code, Constructor]) => {
      const error = new (Constructor as unknown as AnyErrorConstructor)('x', 'y')
      expect(error.code).toBe(code)
      return [code, error.statusCode]
    })
    const byCode = (a: Array<string | number>, b: Array<string | number>) => String(a[0]).localeCompare(String(b[0]))
    expect(listed.toSorted(byCode)).toEqual(registered.toSorted(byCode))
  })
})
