import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import SQLite from 'better-sqlite3'
import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { Kysely, Migrator, PostgresDialect, SqliteDialect, type Migration, type Transaction } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import maintenance, {
  kyselyMaintenanceStore,
  maintenanceInstanceDetailsMigration,
  maintenanceMigration,
  maintenanceMigrations,
  maintenanceWindowsMigration,
  type CommitSeams,
  type MaintenancePrincipal,
  type MaintenanceTables,
} from '../app/maintenance/index.js'
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from './helpers/databases.js'

const MAINTENANCE_DIR = path.join(import.meta.dirname, '..', 'app', 'maintenance')

/** The host application's own table, next to the plugin's. */
interface Tables extends MaintenanceTables {
  note: { id: string, author: string }
}

/** The host application's people, named by an `x-user` header: its own idea of authentication. */
const PEOPLE: Record<string, MaintenancePrincipal> = {
  boss: { name: 'boss', canManage: true, isEmergency: false },
  deputy: { name: 'deputy', canManage: true, isEmergency: false },
  ann: { name: 'ann', canManage: false, isEmergency: false },
  root: { name: 'root', canManage: false, isEmergency: true },
}

function principalOf (request: FastifyRequest): MaintenancePrincipal | null {
  const name = request.headers['x-user']
  return typeof name === 'string' ? PEOPLE[name] ?? null : null
}

/** A Kysely database of `kind` for the host application, migrated with the plugin's migrations only. */
async function hostDatabase (testDatabase: TestDatabase, migrations: Record<string, Migration>): Promise<Kysely<Tables>> {
  const db = new Kysely<Tables>({
    dialect: testDatabase.url.kind === 'sqlite'
      ? new SqliteDialect({ database: new SQLite(testDatabase.url.file) })
      : new PostgresDialect({ pool: new pg.Pool({ connectionString: testDatabase.url.url, max: 4 }) }),
  })
  const migrator = new Migrator({ db, provider: { getMigrations: async () => migrations } })
  const { error } = await migrator.migrateToLatest()
  expect(error).toBeUndefined()
  return db
}

const noSeams: CommitSeams = { onBeforeWrites () {}, onBeforeRetry () {} }

type BeforeWritesHook = Parameters<CommitSeams['onBeforeWrites']>[0]
type BeforeRetryHook = Parameters<CommitSeams['onBeforeRetry']>[0]

describe.each(DATABASE_KINDS)('the maintenance plugin in a bare Fastify app on %s', (kind) => {
  let testDatabase: TestDatabase
  let db: Kysely<Tables>
  let app: FastifyInstance
  const beforeWrites: BeforeWritesHook[] = []
  const beforeRetry: BeforeRetryHook[] = []

  /** The smallest unit of work: one transaction, the plugin's hooks first, then the write. */
  async function commit (principal: MaintenancePrincipal | null, write: (transaction: Transaction<Tables>) => Promise<void>): Promise<void> {
    await db.transaction().execute(async (transaction) => {
      for (const hook of beforeWrites) await hook({ transaction, unitOfWork: { principal } })
      await write(transaction)
    })
  }

  function as (user: string | undefined) {
    return user === undefined ? {} : { 'x-user': user }
  }

  async function notes (): Promise<string[]> {
    return (await db.selectFrom('note').select('id').orderBy('id').execute()).map((row) => row.id)
  }

  async function changeMode (user: string, mode: string, extra: Record<string, unknown> = {}) {
    const { version } = (await app.inject({ url: '/api/maintenance' })).json()
    const response = await app.inject({ method: 'PUT', url: '/api/maintenance', headers: as(user), payload: { mode, expectedVersion: version, ...extra } })
    expect(response.statusCode, response.body).toBe(200)
    return response.json()
  }

  beforeAll(async () => {
    testDatabase = await createTestDatabase(kind)
    // The plugin's scheduled windows need their table since the scheduler came (see below).
    db = await hostDatabase(testDatabase, { '0001-maintenance': maintenanceMigration, '0002-maintenance-windows': maintenanceWindowsMigration, '0003-maintenance-instance-details': maintenanceInstanceDetailsMigration })
    await db.schema.createTable('note')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('author', 'text', (c) => c.notNull())
      .execute()

    const seams: CommitSeams = {
      onBeforeWrites (hook) { beforeWrites.push(hook) },
      onBeforeRetry (hook) { beforeRetry.push(hook) },
    }
    app = Fastify()
    await app.register(maintenance, {
      store: kyselyMaintenanceStore(db),
      unitOfWork: seams,
      principalOf,
      identify: (principal) => principal as MaintenancePrincipal | null,
      instanceId: 'bare-1',
      retryAfterSeconds: 120,
      alwaysOpenPrefixes: ['/assets/'],
    })
    app.get('/hello', async function hello () { return { hello: 'world' } })
    app.get('/status', { config: { maintenance: 'always-open' } }, async function status () { return { up: true } })
    app.get('/assets/app.css', async function css (_request, reply) {
      reply.type('text/css')
      return 'body { margin: 0 }'
    })
    app.post<{ Params: { id: string } }>('/notes/:id', async function saveNote (request) {
      const principal = principalOf(request)
      await commit(principal, async (transaction) => {
        await transaction.insertInto('note').values({ id: request.params.id, author: principal?.name ?? 'visitor' }).execute()
      })
      return { saved: request.params.id }
    })
    await app.ready()
  })
  afterAll(async () => {
    await app?.close()
    await db?.destroy()
    await testDatabase?.drop()
  })

  it('hooks into the unit of work through the two seams', () => {
    expect(beforeWrites).toHaveLength(1)
    expect(beforeRetry).toHaveLength(1)
  })

  it('puts quiesce-mode on every response, its own routes and the host\'s, 404s included', async () => {
    for (const url of ['/hello', '/status', '/assets/app.css', '/nowhere', '/healthz', '/api/maintenance']) {
      expect((await app.inject({ url })).headers['quiesce-mode'], url).toBe('normal')
    }
  })

  it('serves GET and PUT /api/maintenance, with the state row and the audit log in the host\'s database', async () => {
    const initial = await app.inject({ url: '/api/maintenance' })
    expect(initial.statusCode).toBe(200)
    expect(initial.json()).toEqual({ mode: 'normal', version: 1, since: expect.any(String), reason: null, until: null, maintainer: null })

    const changed = await app.inject({ method: 'PUT', url: '/api/maintenance', headers: as('boss'), payload: { mode: 'concurrent', reason: 'Bare test', expectedVersion: 1 } })
    expect(changed.statusCode).toBe(200)
    expect(changed.json()).toEqual({ mode: 'concurrent', version: 2, since: expect.any(String), reason: 'Bare test', until: null, maintainer: 'boss' })
    expect((await app.inject({ url: '/api/maintenance', headers: as('deputy') })).json()).toMatchObject({ mode: 'concurrent', maintainer: 'boss' })
    expect((await app.inject({ url: '/api/maintenance', headers: as('ann') })).json()).toMatchObject({ mode: 'concurrent', maintainer: null })
    expect(await db.selectFrom('maintenance_state').select(['mode', 'maintainer', 'version']).executeTakeFirst()).toEqual({ mode: 'concurrent', maintainer: 'boss', version: 2 })
    expect(await db.selectFrom('maintenance_log').select(['actor', 'channel', 'instance', 'outcome', 'new_version']).execute())
      .toEqual([{ actor: 'boss', channel: 'api', instance: 'bare-1', outcome: 'applied', new_version: 2 }])

    // The plugin's errors in Fastify's default error shape, without any handler of the host's.
    const refused = await app.inject({ method: 'PUT', url: '/api/maintenance', headers: as('deputy'), payload: { mode: 'normal', expectedVersion: 2 } })
    expect(refused.statusCode).toBe(403)
    expect(refused.json()).toMatchObject({ statusCode: 403, code: 'QUIESCE_NOT_MAINTAINER', error: 'Forbidden' })
    const stale = await app.inject({ method: 'PUT', url: '/api/maintenance', headers: as('boss'), payload: { mode: 'normal', expectedVersion: 1 } })
    expect(stale.statusCode).toBe(409)
    expect(stale.json()).toMatchObject({ statusCode: 409, code: 'QUIESCE_STATE_CONFLICT' })
    expect((await app.inject({ method: 'PUT', url: '/api/maintenance', payload: { mode: 'normal', expectedVersion: 2 } })).statusCode).toBe(401)

    await changeMode('boss', 'normal')
    expect((await app.inject({ url: '/healthz' })).json()).toEqual({ status: 'ok', mode: 'normal', version: 3, instance: 'bare-1' })
  })

  it('the commit guard refuses a non-maintainer\'s write in concurrent mode and lets the maintainer and the emergency user through', async () => {
    await changeMode('boss', 'concurrent', { reason: 'Guard test' })
    for (const user of ['ann', 'deputy', undefined]) {
      const response = await app.inject({ method: 'POST', url: `/notes/by-${user ?? 'visitor'}`, headers: as(user) })
      expect(response.statusCode, user).toBe(503)
      expect(response.headers['retry-after']).toBe('120')
      expect(response.headers['quiesce-mode']).toBe('concurrent')
      expect(response.json()).toEqual({
        statusCode: 503,
        code: 'QUIESCE_READ_ONLY',
        error: 'Service Unavailable',
        message: 'The site is in Concurrent (read-only) maintenance: Guard test; nothing was saved',
      })
    }
    for (const user of ['boss', 'root']) {
      const response = await app.inject({ method: 'POST', url: `/notes/by-${user}`, headers: as(user) })
      expect(response.statusCode, user).toBe(200)
    }
    expect(await notes()).toEqual(['by-boss', 'by-root'])
    await changeMode('boss', 'normal')
    expect((await app.inject({ method: 'POST', url: '/notes/by-ann', headers: as('ann') })).statusCode).toBe(200)
    expect(await notes()).toEqual(['by-ann', 'by-boss', 'by-root'])
  })

  it('the guard judges the state in the commit\'s own transaction, not this instance\'s copy', async () => {
    const { version } = (await app.inject({ url: '/api/maintenance' })).json()
    // Another instance switched: the row says concurrent, this instance has not heard yet.
    const now = new Date().toISOString()
    await db.updateTable('maintenance_state').set({ mode: 'concurrent', maintainer: 'deputy', reason: 'Elsewhere', since: now, version: version + 1, changed_by: 'deputy', changed_at: now }).execute()
    expect((await app.inject({ url: '/hello' })).headers['quiesce-mode']).toBe('normal')

    const response = await app.inject({ method: 'POST', url: '/notes/behind-the-back', headers: as('ann') })
    expect(response.statusCode).toBe(503)
    expect(response.json()).toMatchObject({ code: 'QUIESCE_READ_ONLY' })
    expect(await notes()).not.toContain('behind-the-back')
    // The commit taught this instance the new state.
    expect((await app.inject({ url: '/api/maintenance', headers: as('boss') })).json()).toMatchObject({ mode: 'concurrent', maintainer: 'deputy', version: version + 1 })
    await changeMode('deputy', 'normal')
  })

  it('the exclusive gate refuses before the handler, except always-open routes, alwaysOpenPrefixes and the maintainer', async () => {
    await changeMode('boss', 'exclusive', { reason: 'Gate test' })
    for (const user of [undefined, 'ann', 'deputy']) {
      const response = await app.inject({ url: '/hello', headers: as(user) })
      expect(response.statusCode, user).toBe(503)
      expect(response.headers['retry-after']).toBe('120')
      expect(response.headers['quiesce-mode']).toBe('exclusive')
      expect(response.json()).toEqual({ statusCode: 503, code: 'QUIESCE_EXCLUSIVE', error: 'Service Unavailable', message: 'The site is closed for Exclusive maintenance: Gate test' })
      const write = await app.inject({ method: 'POST', url: `/notes/gate-${user ?? 'visitor'}`, headers: as(user) })
      expect(write.statusCode).toBe(503)
      expect(write.json()).toMatchObject({ code: 'QUIESCE_EXCLUSIVE' })
    }
    for (const url of ['/status', '/assets/app.css', '/healthz', '/api/maintenance']) {
      const response = await app.inject({ url })
      expect(response.statusCode, url).toBe(200)
      expect(response.headers['quiesce-mode']).toBe('exclusive')
    }
    for (const user of ['boss', 'root']) {
      expect((await app.inject({ url: '/hello', headers: as(user) })).json()).toEqual({ hello: 'world' })
      expect((await app.inject({ method: 'POST', url: `/notes/gate-${user}`, headers: as(user) })).statusCode).toBe(200)
    }
    expect((await notes()).filter((id) => id.startsWith('gate-'))).toEqual(['gate-boss', 'gate-root'])
    await changeMode('boss', 'normal')
    expect((await app.inject({ url: '/hello' })).statusCode).toBe(200)
  })
})

describe.each(DATABASE_KINDS)('the maintenance plugin with the migrations its README asks for on %s', (kind) => {
  it('starts on a database migrated with maintenanceMigrations alone', async () => {
    const testDatabase = await createTestDatabase(kind)
    const db = await hostDatabase(testDatabase, maintenanceMigrations)
    const app = Fastify()
    try {
      await app.register(maintenance, { store: kyselyMaintenanceStore(db), unitOfWork: noSeams, principalOf, identify: () => null, instanceId: 'bare-2' })
      await app.ready()
      expect((await app.inject({ url: '/healthz' })).json()).toMatchObject({ status: 'ok', mode: 'normal' })
    } finally {
      await app.close()
      await db.destroy()
      await testDatabase.drop()
    }
  })
})

describe('the maintenance plugin stays self-contained', () => {
  it('no file in app/maintenance/ imports from outside app/maintenance/', () => {
    const files = readdirSync(MAINTENANCE_DIR).filter((file) => file.endsWith('.ts'))
    expect(files).toContain('index.ts')
    const specifiers = /(?:^|\s)(?:import|export)\s(?:[^'"`;]*?\sfrom\s)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g
    const outside: string[] = []
    let relative = 0
    for (const file of files) {
      const text = readFileSync(path.join(MAINTENANCE_DIR, file), 'utf8')
      for (const match of text.matchAll(specifiers)) {
        const specifier = match[1] ?? match[2]!
        const isPackage = !specifier.startsWith('.') && !specifier.startsWith('/')
        if (isPackage) continue
        relative++
        if (!specifier.startsWith('./')) outside.push(`${file}: ${specifier}`)
      }
    }
    expect(relative).toBeGreaterThan(0)
    expect(outside).toEqual([])
  })
})
