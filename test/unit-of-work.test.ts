import http from 'node:http'
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { buildApp } from '../app/app.js'
import { findDocument } from '../app/content/documents.js'
import { openDatabase, type Database } from '../app/db/database.js'
import { ReadOnlyError } from '../app/errors.js'
import { assertVersionMatched } from '../app/unit-of-work/unit-of-work.js'
import { startTestSite, testConfig, type TestSite } from './helpers/app.js'
import { DATABASE_KINDS } from './helpers/databases.js'
import { addPrincipals, basicOf } from './helpers/principals.js'
import { deferred } from './helpers/wait.js'

const ANN = basicOf('member')

/** A document row written directly, outside any unit of work, as a concurrent commit would. */
async function bumpVersionBehindTheBack (database: Database, slug: string): Promise<void> {
  await database.writer.updateTable('document')
    .set((eb) => ({ version: eb('version', '+', 1), title: 'changed underneath' }))
    .where('slug', '=', slug).execute()
}

describe.each(DATABASE_KINDS)('unit of work on %s', (kind) => {
  let site: TestSite
  const events: string[] = []
  /** The errors requests ended in (onError), as `url: message`. */
  const requestErrors: string[] = []
  let attemptsSeen: number[] = []
  const gates = { release: deferred(), entered: deferred() }

  beforeAll(async () => {
    site = await startTestSite(kind, {
      configure (app) {
        // Stages an update of :slug, optionally with a concurrent change after the read.
        app.post<{ Params: { slug: string }, Querystring: { interfere?: string, status?: string } }>('/api/t/update/:slug', async (request, reply) => {
          const uow = request.unitOfWork
          attemptsSeen.push(uow.attempt)
          reply.header('x-attempt-header', `set-in-attempt-${uow.attempt}`)
          const doc = await findDocument(uow.db, request.params.slug)
          if (doc === undefined) throw new Error('missing document')
          const interfere = request.query.interfere === 'always' || (request.query.interfere === 'once' && uow.attempt === 1)
          if (interfere) await bumpVersionBehindTheBack(site.database, doc.slug)
          app.documents.update(uow, doc, { title: `updated in attempt ${uow.attempt}`, body: doc.body }, 'test')
          uow.afterCommit(() => { events.push(`after-commit ${doc.slug} attempt ${uow.attempt}`) })
          if (request.query.status !== undefined) reply.code(Number(request.query.status))
          return { attempt: uow.attempt }
        })
        app.post<{ Params: { slug: string } }>('/api/t/throw/:slug', async (request) => {
          const uow = request.unitOfWork
          app.documents.create(uow, request.params.slug, { title: 'never', body: 'never' }, 'test')
          uow.afterCommit(() => { events.push('after-commit of a failed request') })
          throw new Error('handler failed after staging')
        })
        app.post<{ Params: { slug: string } }>('/api/t/direct-send/:slug', async (request, reply) => {
          app.documents.create(request.unitOfWork, request.params.slug, { title: 'direct', body: 'direct' }, 'test')
          reply.send({ sent: 'directly' })
          return reply
        })
        app.post('/api/t/raw-write', async (request) => {
          await sql`insert into document (slug, title, body, version, created_by, created_at, updated_by, updated_at)
            values ('raw-write', 'raw', 'raw', 1, 'x', 'x', 'x', 'x')`.execute(request.unitOfWork.db)
          return { wrote: true }
        })
        app.post<{ Params: { slug: string } }>('/api/t/slow-create/:slug', async (request) => {
          const uow = request.unitOfWork
          app.documents.create(uow, request.params.slug, { title: 'slow', body: 'slow' }, 'test')
          uow.afterCommit(() => { events.push(`after-commit slow ${request.params.slug}`) })
          gates.entered.resolve()
          await gates.release.promise
          return { created: request.params.slug }
        })
        app.get('/api/t/read', async (request) => ({ hasWrites: request.unitOfWork.hasWrites, attempt: request.unitOfWork.attempt }))
        app.get('/api/t/slow-read', async () => {
          gates.entered.resolve()
          await gates.release.promise
          return { read: true }
        })
        app.addHook('onError', async (request, _reply, error) => { requestErrors.push(`${request.url}: ${error.message}`) })
      },
    })
    await addPrincipals(site, ['member'])
  })
  afterAll(async () => { await site.close() })
  beforeEach(() => {
    events.length = 0
    attemptsSeen = []
  })

  async function createDoc (slug: string): Promise<void> {
    const res = await site.app.inject({ method: 'PUT', url: `/api/docs/${slug}`, headers: { authorization: ANN }, payload: { title: slug, body: 'body' } })
    expect(res.statusCode).toBe(201)
  }

  it('commits staged writes after the handler and only then runs afterCommit', async () => {
    await createDoc('uow-commit')
    const res = await site.app.inject({ method: 'POST', url: '/api/t/update/uow-commit', headers: { authorization: ANN } })
    expect(res.statusCode).toBe(200)
    expect(res.json()).toEqual({ attempt: 1 })
    const row = await findDocument(site.database.writer, 'uow-commit')
    expect(row).toMatchObject({ version: 2, title: 'updated in attempt 1', updatedBy: 'test' })
    expect(events).toEqual(['after-commit uow-commit attempt 1'])
  })

  it('a request that staged nothing commits trivially', async () => {
    const res = await site.app.inject({ url: '/api/t/read' })
    expect(res.json()).toEqual({ hasWrites: false, attempt: 1 })
  })

  it('a reply with status >= 400 never commits, and runs no afterCommit', async () => {
    await createDoc('uow-status')
    const res = await site.app.inject({ method: 'POST', url: '/api/t/update/uow-status?status=422', headers: { authorization: ANN } })
    expect(res.statusCode).toBe(422)
    expect((await findDocument(site.database.writer, 'uow-status'))!.version).toBe(1)
    expect(events).toEqual([])
  })

  it('a handler that throws after staging commits nothing', async () => {
    const res = await site.app.inject({ method: 'POST', url: '/api/t/throw/uow-throw', headers: { authorization: ANN } })
    expect(res.statusCode).toBe(500)
    expect(res.json()).toMatchObject({ code: 'QUIESCE_INTERNAL' })
    expect(res.body).not.toContain('handler failed')
    expect(await findDocument(site.database.writer, 'uow-throw')).toBeUndefined()
    expect(events).toEqual([])
  })

  it('a conflict at commit retries the whole handler with a fresh unit of work and a reset reply', async () => {
    await createDoc('uow-retry')
    const res = await site.app.inject({ method: 'POST', url: '/api/t/update/uow-retry?interfere=once', headers: { authorization: ANN } })
    expect(res.statusCode).toBe(200)
    expect(res.json()).toEqual({ attempt: 2 })
    expect(res.headers['x-attempt-header']).toBe('set-in-attempt-2')
    expect(attemptsSeen).toEqual([1, 2])
    // v1 → v2 by the interference → v3 by the retried request, which re-read v2.
    expect(await findDocument(site.database.writer, 'uow-retry')).toMatchObject({ version: 3, title: 'updated in attempt 2' })
    expect(events).toEqual(['after-commit uow-retry attempt 2'])
  })

  it('the last conflicting attempt answers 409 QUIESCE_CONFLICT and commits nothing', async () => {
    await createDoc('uow-409')
    const res = await site.app.inject({ method: 'POST', url: '/api/t/update/uow-409?interfere=always', headers: { authorization: ANN } })
    expect(res.statusCode).toBe(409)
    expect(res.json()).toEqual({
      statusCode: 409,
      code: 'QUIESCE_CONFLICT',
      error: 'Conflict',
      message: 'The change conflicted with a concurrent change and was not saved (tried 3 times)',
    })
    expect(attemptsSeen).toEqual([1, 2, 3])
    // Only the three interfering writes landed.
    expect(await findDocument(site.database.writer, 'uow-409')).toMatchObject({ version: 4, title: 'changed underneath' })
    expect(events).toEqual([])
  })

  it('a handler that sends its reply itself has its writes refused', async () => {
    const res = await site.app.inject({ method: 'POST', url: '/api/t/direct-send/uow-direct', headers: { authorization: ANN } })
    expect(res.statusCode).toBe(500)
    expect(res.json().code).toBe('QUIESCE_DIRECT_SEND')
    expect(await findDocument(site.database.writer, 'uow-direct')).toBeUndefined()
  })

  it('a handler cannot write behind the unit of work: its database handle is read-only', async () => {
    const res = await site.app.inject({ method: 'POST', url: '/api/t/raw-write', headers: { authorization: ANN } })
    expect(res.statusCode).toBe(500)
    expect(await findDocument(site.database.writer, 'raw-write')).toBeUndefined()
  })

  /** The site on a real port (once per suite), for clients that go away mid-request. */
  let address: string | undefined
  async function listening (): Promise<string> {
    address ??= await site.app.listen({ port: 0, host: '127.0.0.1' })
    return address
  }

  /**
   * Sends `method path` over a real connection and goes away while its handler waits at the
   * gates; then lets the handler finish, and gives the server a moment to end the request.
   */
  async function goAwayDuring (method: string, path: string): Promise<void> {
    const address = await listening()
    gates.entered = deferred()
    gates.release = deferred()
    const request = http.request(`${address}${path}`, { method, headers: { authorization: ANN } })
    request.on('error', () => {})
    request.end()
    await gates.entered.promise
    request.destroy()
    await new Promise((resolve) => setTimeout(resolve, 50))
    gates.release.resolve()
    await new Promise((resolve) => setTimeout(resolve, 100))
  }

  it('a client that goes away during a read ends nothing in an error: a read has nothing to refuse', async () => {
    requestErrors.length = 0
    await goAwayDuring('GET', '/api/t/slow-read')
    expect(requestErrors).toEqual([])
  })

  it('a client that aborts before the commit gets nothing committed and leaks nothing', async () => {
    await goAwayDuring('POST', '/api/t/slow-create/uow-abort')
    expect(await findDocument(site.database.writer, 'uow-abort')).toBeUndefined()
    expect(events).toEqual([])
    // The database is still usable for everyone else.
    const res = await site.app.inject({ url: '/api/t/read' })
    expect(res.statusCode).toBe(200)
    await site.app.server.close()
  })
})

describe.each(DATABASE_KINDS)('unit of work seams on %s', (kind) => {
  let site: TestSite
  const seen: string[] = []
  let vetoNext = false
  let refuseRetry = false

  beforeAll(async () => {
    site = await startTestSite(kind, {
      configure (app) {
        app.unitOfWork.onBeforeWrites(async ({ transaction, unitOfWork }) => {
          // The hook reads in the commit's own transaction.
          const doc = await transaction.selectFrom('document').select('version').where('slug', '=', 'seam-a').executeTakeFirst()
          seen.push(`before-writes attempt ${unitOfWork.attempt} by ${unitOfWork.principal?.name}${doc ? ` sees seam-a v${doc.version}` : ''}`)
          if (vetoNext) {
            // A write made inside the transaction before the veto is rolled back with it.
            await transaction.insertInto('document').values({ slug: 'vetoed-side', title: 'x', body: 'x', version: 1, created_by: 'x', created_at: 'x', updated_by: 'x', updated_at: 'x' }).execute()
            throw new ReadOnlyError(' (vetoed by the hook)')
          }
        })
        app.unitOfWork.onBeforeRetry(async ({ attempt, principal, cause }) => {
          seen.push(`before-retry attempt ${attempt} by ${principal?.name} after ${(cause as { code?: string }).code}`)
          if (refuseRetry) throw new ReadOnlyError(' (retry refused)')
        })
        app.post<{ Params: { slug: string }, Querystring: { interfere?: string } }>('/api/t/seam/:slug', async (request) => {
          const uow = request.unitOfWork
          const doc = await findDocument(uow.db, request.params.slug)
          if (request.query.interfere === 'once' && uow.attempt === 1) await bumpVersionBehindTheBack(site.database, request.params.slug)
          app.documents.update(uow, doc!, { title: `seam ${uow.attempt}`, body: 'b' }, 'seam')
          return { attempt: uow.attempt }
        })
      },
    })
    await addPrincipals(site, ['member'])
  })
  afterAll(async () => { await site.close() })
  beforeEach(() => {
    seen.length = 0
    vetoNext = false
    refuseRetry = false
  })

  async function createDoc (slug: string): Promise<void> {
    const res = await site.app.inject({ method: 'PUT', url: `/api/docs/${slug}`, headers: { authorization: ANN }, payload: { title: slug, body: 'body' } })
    expect(res.statusCode).toBe(201)
  }

  it('the in-transaction hook runs before the writes, as the request principal', async () => {
    await createDoc('seam-a')
    seen.length = 0
    const res = await site.app.inject({ method: 'POST', url: '/api/t/seam/seam-a', headers: { authorization: ANN } })
    expect(res.statusCode).toBe(200)
    expect(seen).toEqual(['before-writes attempt 1 by ann sees seam-a v1'])
  })

  it('the in-transaction hook may veto the commit: nothing of the transaction persists', async () => {
    await createDoc('seam-veto')
    seen.length = 0
    vetoNext = true
    const res = await site.app.inject({ method: 'POST', url: '/api/t/seam/seam-veto', headers: { authorization: ANN } })
    expect(res.statusCode).toBe(503)
    expect(res.json()).toMatchObject({ code: 'QUIESCE_READ_ONLY', message: expect.stringContaining('(vetoed by the hook)') })
    expect((await findDocument(site.database.writer, 'seam-veto'))!.version).toBe(1)
    expect(await findDocument(site.database.writer, 'vetoed-side')).toBeUndefined()
  })

  it('the retry hook runs before each retry and may end the request', async () => {
    await createDoc('seam-retry')
    seen.length = 0
    const ok = await site.app.inject({ method: 'POST', url: '/api/t/seam/seam-retry?interfere=once', headers: { authorization: ANN } })
    expect(ok.json()).toEqual({ attempt: 2 })
    expect(seen).toEqual([
      'before-writes attempt 1 by ann sees seam-a v2',
      'before-retry attempt 2 by ann after QUIESCE_CONFLICT',
      'before-writes attempt 2 by ann sees seam-a v2',
    ])

    await createDoc('seam-refused')
    refuseRetry = true
    const refused = await site.app.inject({ method: 'POST', url: '/api/t/seam/seam-refused?interfere=once', headers: { authorization: ANN } })
    expect(refused.statusCode).toBe(503)
    expect(refused.json()).toMatchObject({ code: 'QUIESCE_READ_ONLY', message: expect.stringContaining('(retry refused)') })
    expect(await findDocument(site.database.writer, 'seam-refused')).toMatchObject({ version: 2, title: 'changed underneath' })
  })
})

describe.each(DATABASE_KINDS)('two instances committing at once on %s', (kind) => {
  let first: TestSite
  let second: FastifyInstance
  let bothRead = deferred()
  let reads = 0

  beforeAll(async () => {
    const twoReads = (app: FastifyInstance) => {
      app.post<{ Params: { slug: string } }>('/api/t/concurrent/:slug', async (request) => {
        const uow = request.unitOfWork
        const doc = (await findDocument(uow.db, request.params.slug))!
        if (uow.attempt === 1) {
          // Both requests read version 1 before either commits: a true write-write race.
          if (++reads === 2) bothRead.resolve()
          await bothRead.promise
        }
        app.documents.update(uow, doc, { title: `by ${request.headers['x-instance']} attempt ${uow.attempt}`, body: doc.body }, String(request.headers['x-instance']))
        return { attempt: uow.attempt, readVersion: doc.version }
      })
    }
    first = await startTestSite(kind, { config: { retryAttempts: 1 }, configure: twoReads })
    // A second app instance with its own connections to the same database.
    const config = testConfig(first.testDatabase, { retryAttempts: 1, instanceId: 'second' })
    second = await buildApp({ config, database: await openDatabase(config.database) })
    twoReads(second)
    await second.ready()
    await addPrincipals(first, ['member'])
  })
  afterAll(async () => {
    await second.close()
    await first.close()
  })

  async function race (slug: string) {
    bothRead = deferred()
    reads = 0
    return Promise.all([
      first.app.inject({ method: 'POST', url: `/api/t/concurrent/${slug}`, headers: { authorization: ANN, 'x-instance': 'first' } }),
      second.inject({ method: 'POST', url: `/api/t/concurrent/${slug}`, headers: { authorization: ANN, 'x-instance': 'second' } }),
    ])
  }

  it('exactly one of two truly concurrent conflicting commits wins; the other gets 409 and loses nothing silently', async () => {
    const put = await first.app.inject({ method: 'PUT', url: '/api/docs/race-a', headers: { authorization: ANN }, payload: { title: 'race', body: 'b' } })
    expect(put.statusCode).toBe(201)
    const responses = await race('race-a')
    const statuses = responses.map((r) => r.statusCode).sort()
    expect(statuses).toEqual([200, 409])
    const winner = responses.find((r) => r.statusCode === 200)!
    expect(winner.json()).toEqual({ attempt: 1, readVersion: 1 })
    expect(responses.find((r) => r.statusCode === 409)!.json().code).toBe('QUIESCE_CONFLICT')
    const row = await findDocument(first.database.writer, 'race-a')
    expect(row!.version).toBe(2)
    expect(row!.title).toBe(`by ${winner === responses[0] ? 'first' : 'second'} attempt 1`)
  })

  it('with retries, the loser re-reads the winner\'s version and both changes land in order', async () => {
    const retrying = await startTestSite(kind, {
      config: { retryAttempts: 3 },
      configure (app) {
        let count = 0
        let ready = deferred()
        app.post<{ Params: { slug: string } }>('/api/t/concurrent/:slug', async (request) => {
          const uow = request.unitOfWork
          const doc = (await findDocument(uow.db, request.params.slug))!
          if (uow.attempt === 1) {
            if (++count === 2) ready.resolve()
            await ready.promise
          }
          app.documents.update(uow, doc, { title: `${doc.title}+${request.headers['x-name']}`, body: doc.body }, 'x')
          return { attempt: uow.attempt, readVersion: doc.version }
        })
        app.addHook('onClose', async () => { ready = deferred() })
      },
    })
    try {
      await addPrincipals(retrying, ['member'])
      await retrying.app.inject({ method: 'PUT', url: '/api/docs/race-b', headers: { authorization: ANN }, payload: { title: 'start', body: 'b' } })
      const responses = await Promise.all(['a', 'b'].map((name) => retrying.app.inject({ method: 'POST', url: '/api/t/concurrent/race-b', headers: { authorization: ANN, 'x-name': name } })))
      expect(responses.map((r) => r.statusCode)).toEqual([200, 200])
      expect(responses.map((r) => r.json().attempt).sort()).toEqual([1, 2])
      const row = await findDocument(retrying.database.writer, 'race-b')
      expect(row!.version).toBe(3)
      expect(['start+a+b', 'start+b+a']).toContain(row!.title)
    } finally {
      await retrying.close()
    }
  })
})

describe('assertVersionMatched', () => {
  it('throws a conflict when the guarded update matched no row', () => {
    expect(() => assertVersionMatched({ numUpdatedRows: 0n }, 'document x')).toThrow('document x changed since it was read')
    expect(() => assertVersionMatched({ numUpdatedRows: 1n }, 'document x')).not.toThrow()
    expect(() => assertVersionMatched({ numDeletedRows: 0n }, 'document y')).toThrow(/document y/)
  })
})

describe.each(DATABASE_KINDS)('closing the server on %s', (kind) => {
  it('lets an in-flight request finish and commit, then releases the database', async () => {
    const entered = deferred()
    const release = deferred()
    const site = await startTestSite(kind, {
      configure (app) {
        app.post('/api/t/slow', async (request) => {
          app.documents.create(request.unitOfWork, 'closing-slow', { title: 'slow', body: 'slow' }, 'test')
          entered.resolve()
          await release.promise
          return { ok: true }
        })
      },
    })
    try {
      await addPrincipals(site, ['member'])
      const address = await site.app.listen({ port: 0, host: '127.0.0.1' })
      const response = new Promise<number>((resolve, reject) => {
        const request = http.request(`${address}/api/t/slow`, { method: 'POST', agent: false, headers: { authorization: ANN } }, (res) => {
          res.resume()
          res.on('end', () => resolve(res.statusCode!))
        })
        request.on('error', reject)
        request.end()
      })
      await entered.promise
      const closed = site.app.close()
      release.resolve()
      expect(await response).toBe(200)
      await closed
      // The database is closed now; a fresh connection sees the committed row.
      const reopened = await openDatabase(site.config.database)
      try {
        expect(await findDocument(reopened.writer, 'closing-slow')).toMatchObject({ version: 1 })
      } finally {
        await reopened.destroy()
      }
    } finally {
      await site.testDatabase.drop()
    }
  })

  it('refuses commits once the engine is closed', async () => {
    const site = await startTestSite(kind)
    try {
      const unitOfWork = site.app.unitOfWork.begin(null)
      unitOfWork.stage(async () => {})
      await site.app.unitOfWork.close()
      await expect(site.app.unitOfWork.commit(unitOfWork)).rejects.toThrow('the unit of work engine is closed')
    } finally {
      await site.close()
    }
  })
})
