import Fastify from 'fastify'
import { sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { principalFor, type Principal } from '../app/auth/principal.js'
import { findDocument } from '../app/content/documents.js'
import { openDatabase, type Database } from '../app/db/database.js'
import { ConflictError } from '../app/errors.js'
import maintenancePlugin, { kyselyMaintenanceStore } from '../app/maintenance/index.js'
import { UnitOfWorkEngine } from '../app/unit-of-work/unit-of-work.js'
import { startTestSite, type TestSite } from './helpers/app.js'
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from './helpers/databases.js'
import { addPrincipals, basicOf } from './helpers/principals.js'
import { deferred, until } from './helpers/wait.js'

const BOSS = basicOf('maintainer')
const ANN = basicOf('member')

async function switchMode (site: TestSite, authorization: string, mode: string, reason = 'test') {
  const current = (await site.app.inject({ url: '/api/maintenance' })).json()
  const res = await site.app.inject({ method: 'PUT', url: '/api/maintenance', headers: { authorization }, payload: { mode, reason, expectedVersion: current.version } })
  expect(res.statusCode).toBe(200)
  return res.json()
}

describe.each(DATABASE_KINDS)('the commit guard on %s', (kind) => {
  let site: TestSite
  const afterCommits: string[] = []
  let gate = { entered: deferred(), release: deferred() }

  beforeAll(async () => {
    site = await startTestSite(kind, {
      configure (app) {
        // Stages a create, then waits: the mode may change before it commits.
        app.post<{ Params: { slug: string } }>('/api/t/slow-create/:slug', async (request) => {
          const uow = request.unitOfWork
          app.documents.create(uow, request.params.slug, { title: 'slow', body: 'slow write' }, request.principal!.name)
          uow.afterCommit(() => { afterCommits.push(request.params.slug) })
          gate.entered.resolve()
          await gate.release.promise
          return { created: request.params.slug }
        })
        // Writes with raw SQL through its read handle, behind the unit of work's back.
        app.post('/api/t/raw-write', async (request) => {
          await sql`update document set title = 'written behind the back' where slug = 'guard-raw'`.execute(request.unitOfWork.db)
          return { wrote: true }
        })
      },
    })
    await addPrincipals(site, ['maintainer', 'member'])
  })
  afterAll(async () => { await site.close() })
  beforeEach(async () => {
    afterCommits.length = 0
    gate = { entered: deferred(), release: deferred() }
    if (site.app.maintenance.state.mode !== 'normal') await switchMode(site, BOSS, 'normal')
  })

  async function slowCreateAcrossSwitch (authorization: string, slug: string, mode: string) {
    const response = site.app.inject({ method: 'POST', url: `/api/t/slow-create/${slug}`, headers: { authorization } })
    await gate.entered.promise
    // The switch is acknowledged while the request is between its handler and its commit.
    await switchMode(site, BOSS, mode, `switch during ${slug}`)
    gate.release.resolve()
    return response
  }

  it('aborts a write that began in normal mode and commits after a switch to concurrent', async () => {
    const res = await slowCreateAcrossSwitch(ANN, 'guard-concurrent', 'concurrent')
    expect(res.statusCode).toBe(503)
    expect(res.json()).toMatchObject({ code: 'QUIESCE_READ_ONLY', statusCode: 503, error: 'Service Unavailable' })
    expect(res.headers['quiesce-mode']).toBe('concurrent')
    expect(res.headers['retry-after']).toBe('300')
    expect(await findDocument(site.database.writer, 'guard-concurrent')).toBeUndefined()
    const search = await site.app.inject('/api/search?q=slow')
    expect(search.json().hits).toEqual([])
    expect(afterCommits).toEqual([])
  })

  it('aborts it with QUIESCE_EXCLUSIVE after a switch to exclusive', async () => {
    const res = await slowCreateAcrossSwitch(ANN, 'guard-exclusive', 'exclusive')
    expect(res.statusCode).toBe(503)
    expect(res.json().code).toBe('QUIESCE_EXCLUSIVE')
    expect(await findDocument(site.database.writer, 'guard-exclusive')).toBeUndefined()
    expect(afterCommits).toEqual([])
  })

  it('lets the maintainer\'s own in-flight write commit after the switch', async () => {
    const res = await slowCreateAcrossSwitch(BOSS, 'guard-maintainer', 'concurrent')
    expect(res.statusCode).toBe(200)
    expect(await findDocument(site.database.writer, 'guard-maintainer')).toMatchObject({ version: 1, createdBy: 'boss' })
    expect(afterCommits).toEqual(['guard-maintainer'])
  })

  it('records with each commit the state version it was applied under', async () => {
    const newestCommit = () => site.database.writer.selectFrom('commit_log').select(['actor', 'state_version']).orderBy('id', 'desc').limit(1).executeTakeFirstOrThrow()
    const normal = site.app.maintenance.state.version
    const put = await site.app.inject({ method: 'PUT', url: '/api/docs/guard-stamped', headers: { authorization: ANN }, payload: { title: 't', body: 'b' } })
    expect(put.statusCode).toBe(201)
    expect(await newestCommit()).toEqual({ actor: 'ann', state_version: normal })
    // Staged in normal mode, committed after the switch: the commit says so.
    const res = await slowCreateAcrossSwitch(BOSS, 'guard-stamped-later', 'concurrent')
    expect(res.statusCode).toBe(200)
    expect(await newestCommit()).toEqual({ actor: 'boss', state_version: normal + 1 })
  })

  it('judges the commit by the state in its own transaction, even when this instance has not heard of a switch', async () => {
    // Another instance switched without this one noticing yet (no notification, no change counter).
    const before = site.app.maintenance.state
    await site.database.writer.updateTable('maintenance_state')
      .set({ mode: 'concurrent', maintainer: 'boss', version: before.version + 1 }).where('id', '=', 1).execute()
    expect(site.app.maintenance.state.mode).toBe('normal')
    const res = await site.app.inject({ method: 'PUT', url: '/api/docs/guard-unheard', headers: { authorization: ANN }, payload: { title: 't', body: 'b' } })
    expect(res.statusCode).toBe(503)
    expect(res.json().code).toBe('QUIESCE_READ_ONLY')
    expect(await findDocument(site.database.writer, 'guard-unheard')).toBeUndefined()
    // The guard's read brought this instance up to date.
    expect(site.app.maintenance.state).toMatchObject({ mode: 'concurrent', version: before.version + 1 })
  })

  it('refuses early, without a transaction, what this instance already knows the guard would refuse', async () => {
    await switchMode(site, BOSS, 'concurrent')
    let transactions = 0
    const hook = async () => { transactions++ }
    site.app.unitOfWork.onBeforeWrites(hook)
    const res = await site.app.inject({ method: 'PUT', url: '/api/docs/guard-early', headers: { authorization: ANN }, payload: { title: 't', body: 'b' } })
    expect(res.statusCode).toBe(503)
    expect(res.json().code).toBe('QUIESCE_READ_ONLY')
    expect(transactions).toBe(0)
    // The maintainer's commit does open its transaction.
    const own = await site.app.inject({ method: 'PUT', url: '/api/docs/guard-early', headers: { authorization: BOSS }, payload: { title: 't', body: 'b' } })
    expect(own.statusCode).toBe(201)
    expect(transactions).toBe(1)
  })

  it('the database refuses raw SQL writes from a handler, so a read-only request cannot write', async () => {
    const put = await site.app.inject({ method: 'PUT', url: '/api/docs/guard-raw', headers: { authorization: BOSS }, payload: { title: 'original', body: 'b' } })
    expect(put.statusCode).toBe(201)
    await switchMode(site, BOSS, 'concurrent')
    const res = await site.app.inject({ method: 'POST', url: '/api/t/raw-write', headers: { authorization: ANN } })
    expect(res.statusCode).toBe(500)
    expect(res.json().code).toBe('QUIESCE_INTERNAL')
    expect((await findDocument(site.database.writer, 'guard-raw'))!.title).toBe('original')
  })

  it('refuses writes when the state cannot be read in the commit transaction', async () => {
    await site.database.writer.schema.alterTable('maintenance_state').renameTo('maintenance_state_gone').execute()
    try {
      const res = await site.app.inject({ method: 'PUT', url: '/api/docs/guard-unreadable', headers: { authorization: ANN }, payload: { title: 't', body: 'b' } })
      expect(res.statusCode).toBe(503)
      expect(res.json().code).toBe('QUIESCE_STATE_UNAVAILABLE')
      expect(res.headers['retry-after']).toBeDefined()
    } finally {
      await site.database.writer.schema.alterTable('maintenance_state_gone').renameTo('maintenance_state').execute()
    }
    expect(await findDocument(site.database.writer, 'guard-unreadable')).toBeUndefined()
  })
})

/**
 * A unit of work whose commit conflicts while another instance switches the site to
 * concurrent: this instance has not heard of the switch (no change signal), so only the
 * re-read before the retry can see it.
 */
describe.each(DATABASE_KINDS)('a retry re-reads the state from the database on %s', (kind) => {
  let testDatabase: TestDatabase
  let database: Database
  let other: Database

  beforeAll(async () => {
    testDatabase = await createTestDatabase(kind)
    database = await openDatabase(testDatabase.url)
    other = await openDatabase(testDatabase.url)
  })
  afterAll(async () => {
    await other.destroy()
    await database.destroy()
    await testDatabase.drop()
  })

  it('refuses the retried request, which then never runs, and commits nothing', async () => {
    const app = Fastify()
    const engine = new UnitOfWorkEngine({ writer: database.writer, reader: database.reader, attempts: 3, log: app.log })
    const boss = principalFor({ name: 'boss', role: 'manager' })
    const ann = principalFor({ name: 'ann', role: 'member' })
    // Registered before the plugin's own hook: the switch lands between the attempts.
    engine.onBeforeRetry(async () => {
      await other.writer.updateTable('maintenance_state')
        .set((eb) => ({ mode: 'concurrent', maintainer: 'boss', version: eb('version', '+', 1) }))
        .where('id', '=', 1).execute()
    })
    await app.register(maintenancePlugin, {
      store: kyselyMaintenanceStore(database.writer),
      unitOfWork: engine,
      principalOf: () => null,
      identify: (principal) => principal as Principal | null,
      instanceId: 'retry-test',
      routes: false,
    })
    await app.ready()
    try {
      expect(app.maintenance.state.mode).toBe('normal')
      const attempts: number[] = []
      const write = (principal: Principal, slug: string) => engine.run(principal, async (uow) => {
        attempts.push(uow.attempt)
        uow.stage(async (transaction) => {
          await transaction.insertInto('document').values({ slug, title: 't', body: 'b', version: 1, created_by: principal.name, created_at: 'x', updated_by: principal.name, updated_at: 'x' }).execute()
          if (uow.attempt === 1) throw new ConflictError('a concurrent change (simulated)')
        })
      })

      await expect(write(ann, 'retry-member')).rejects.toMatchObject({ code: 'QUIESCE_READ_ONLY', statusCode: 503 })
      expect(attempts).toEqual([1])
      expect(app.maintenance.state).toMatchObject({ mode: 'concurrent', maintainer: 'boss' })
      expect(await findDocument(database.writer, 'retry-member')).toBeUndefined()

      // The maintainer's retry, judged by the same fresh state, goes through.
      attempts.length = 0
      await write(boss, 'retry-maintainer')
      expect(attempts).toEqual([1, 2])
      expect(await findDocument(database.writer, 'retry-maintainer')).toMatchObject({ version: 1 })
    } finally {
      await app.close()
    }
  })
})

/**
 * PostgreSQL grants a new FOR SHARE on a row while a FOR UPDATE waits for the share locks
 * already held, so a mode change could wait as long as commits kept overlapping (found by the
 * chaos test: PUT /api/maintenance still waiting after 20 s under 50 writers). A change must
 * wait for the commits in flight when it asks, not for those that begin after it. (SQLite has
 * no share lock: its writers take turns.)
 */
describe('a mode change on postgres under a stream of commits', () => {
  let site: TestSite
  const gates = new Map<string, { entered: ReturnType<typeof deferred<void>>, release: ReturnType<typeof deferred<void>> }>()
  const gate = (slug: string) => {
    if (!gates.has(slug)) gates.set(slug, { entered: deferred(), release: deferred() })
    return gates.get(slug)!
  }

  beforeAll(async () => {
    site = await startTestSite('postgres', {
      configure (app) {
        // A create whose commit transaction stays open (its share lock held) until released.
        app.post<{ Params: { slug: string } }>('/api/t/held-create/:slug', async (request) => {
          const uow = request.unitOfWork
          const held = gate(request.params.slug)
          uow.stage(async () => {
            held.entered.resolve()
            await held.release.promise
          })
          app.documents.create(uow, request.params.slug, { title: 'held', body: 'held write' }, request.principal!.name)
          return { created: request.params.slug }
        })
      },
    })
    await addPrincipals(site, ['maintainer', 'member'])
  })
  afterAll(async () => {
    for (const { release } of gates.values()) release.resolve()
    await site.close()
  })

  it('waits for the commits in flight, not for those that begin after it', async () => {
    const heldCreate = (slug: string) => site.app.inject({ method: 'POST', url: `/api/t/held-create/${slug}`, headers: { authorization: ANN } })
    const first = heldCreate('held-first')
    await gate('held-first').entered.promise
    const { version } = (await site.app.inject({ url: '/api/maintenance' })).json()
    const change = site.app.inject({ method: 'PUT', url: '/api/maintenance', headers: { authorization: BOSS }, payload: { mode: 'concurrent', reason: 'under load', expectedVersion: version } })
    await until('the change to wait for the commit in flight', async () => {
      const { rows } = await sql<{ n: string }>`select count(*) as n from pg_stat_activity
        where datname = current_database() and wait_event_type = 'Lock' and query like '%maintenance_state%'`.execute(site.database.writer)
      return Number(rows[0]!.n) > 0
    })
    // A commit that begins while the change waits, and stays open.
    const later = heldCreate('held-later')
    await new Promise((resolve) => setTimeout(resolve, 200))
    gate('held-first').release.resolve()
    const answer = await Promise.race([change, new Promise<'still waiting'>((resolve) => setTimeout(() => resolve('still waiting'), 10_000))])
    expect(answer === 'still waiting' ? answer : answer.statusCode).toBe(200)
    gate('held-later').release.resolve()
    // The later commit was judged after the change: refused, nothing written.
    expect((await first).statusCode).toBe(200)
    const refused = await later
    expect(refused.statusCode).toBe(503)
    expect(refused.json().code).toBe('QUIESCE_READ_ONLY')
    expect(await findDocument(site.database.writer, 'held-later')).toBeUndefined()
    expect(await findDocument(site.database.writer, 'held-first')).toMatchObject({ createdBy: 'ann' })
  })
})
