import http from 'node:http'
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { buildApp } from '../app/app.js'
import { seedDocuments } from '../app/content/seed.js'
import { catalogFor } from '../app/content/catalog.js'
import { openDatabase, type Database } from '../app/db/database.js'
import { REINDEX_BATCH } from '../app/tasks/reindex.js'
import { addUser, csrfTokenIn, mainOf, signIn, startTestSite, testConfig, type TestSite } from './helpers/app.js'
import { DATABASE_KINDS, type DatabaseKind } from './helpers/databases.js'
import { ISO_TIMESTAMP, readState, switchTo } from './helpers/maintenance.js'
import { addPrincipals, basicOf, signedInBrowser } from './helpers/principals.js'
import { BatchWatch, catalogRows, deferred, FINISHED, freshBuild, searchAnswers, taskRow, until } from './helpers/tasks.js'

const BOSS = basicOf('maintainer')
const DEPUTY = basicOf('manager')
const ANN = basicOf('member')
const MANAGERS = new Set(['boss', 'deputy'])

/** Seeded documents get ids 1..350; document 42 is then deleted behind the catalog's back. */
const SEEDED = 350
const GONE = 42
const DOCS = SEEDED - 1
/** Entries the damage removes, corrupts, and adds for ids that have no document. */
const DELETED = [3, 120, 250, 340]
const CORRUPTED = [7, 101, 201, 333]
const ORPHANS = [GONE, 351, 9999]
// Batches of 100 in every mode, so that the concurrent-mode stories stop between batches like the
// others (the larger read-only batch is the CLI's tests' and bench:reindex's).
const TIMINGS = { heartbeatMs: 50, staleAfterMs: 1500, pollMs: 50, concurrency: 1, readOnlyReindexBatch: REINDEX_BATCH }

async function damageCatalog (database: Database): Promise<void> {
  const db = database.writer
  if (database.kind === 'sqlite') {
    await sql`delete from catalog where rowid in (${sql.join([...DELETED, ...ORPHANS])})`.execute(db)
    await sql`update catalog set title = 'Corrupted entry', body = 'xylophone quagmire' where rowid in (${sql.join(CORRUPTED)})`.execute(db)
    for (const id of ORPHANS) await sql`insert into catalog (rowid, slug, title, body) values (${id}, ${`ghost-${id}`}, 'Ghost entry', 'phantom words of a brass hinge')`.execute(db)
  } else {
    await sql`delete from catalog where document_id in (${sql.join([...DELETED, ...ORPHANS])})`.execute(db)
    await sql`update catalog set title = 'Corrupted entry', body = 'xylophone quagmire', search = to_tsvector('english', 'Corrupted entry xylophone quagmire') where document_id in (${sql.join(CORRUPTED)})`.execute(db)
    for (const id of ORPHANS) {
      await sql`insert into catalog (document_id, slug, title, body, search) values (${id}, ${`ghost-${id}`}, 'Ghost entry', 'phantom words of a brass hinge', to_tsvector('english', 'Ghost entry phantom words of a brass hinge'))`.execute(db)
    }
  }
}

async function documentTitles (database: Database, ids: number[]): Promise<string[]> {
  const rows = await database.writer.selectFrom('document').select('title').where('id', 'in', ids).orderBy('id').execute()
  return rows.map((row) => row.title)
}

/** Words, prefixes, titles of damaged documents, words only in the damage. */
async function queriesFor (database: Database): Promise<string[]> {
  return [
    'brass', 'hinge', 'oak shelf bracket', 'polished walnut', 'warehouse', 'guarantee', 'kitch', 'cop', 'bra',
    'q 00120', 'catalog entry 7', 'xylophone', 'phantom', 'ghost', 'corrupted entry',
    ...await documentTitles(database, [...DELETED, ...CORRUPTED, 1, 200, 350]),
  ]
}

async function startReindex (app: FastifyInstance, authorization: string): Promise<number> {
  const response = await app.inject({ method: 'POST', url: '/api/tasks/reindex', headers: { authorization } })
  expect(response.statusCode, response.body).toBe(202)
  const { id } = response.json()
  expect(response.headers.location).toBe(`/api/tasks/${id}`)
  return id
}

async function taskJson (app: FastifyInstance, id: number) {
  const response = await app.inject({ url: `/api/tasks/${id}`, headers: { authorization: BOSS } })
  expect(response.statusCode, response.body).toBe(200)
  return response.json()
}

async function finished (app: FastifyInstance, id: number) {
  return until(`task ${id} to finish`, async () => {
    const task = await taskJson(app, id)
    return FINISHED.includes(task.state) ? task : undefined
  })
}

async function expectExactCatalog (kind: DatabaseKind, site: { app: FastifyInstance, database: Database }): Promise<void> {
  const queries = await queriesFor(site.database)
  const fresh = await freshBuild(kind, site.database, queries)
  expect(await searchAnswers(site.app, queries)).toEqual(fresh.answers)
  const rows = await catalogRows(site.database)
  expect(rows).toEqual(fresh.rows)
  expect(rows.length).toBe(fresh.documents)
}

describe.each(DATABASE_KINDS)('catalog reindex on %s', (kind) => {
  let site: TestSite
  const watch = new BatchWatch(MANAGERS)

  beforeAll(async () => {
    site = await startTestSite(kind, { config: { instanceId: 'reindex-a' }, tasks: TIMINGS, configure: (app) => watch.install(app) })
    await addPrincipals(site, ['maintainer', 'manager', 'member'])
    expect(await seedDocuments(site.database.writer, catalogFor(kind), SEEDED)).toBe(SEEDED)
    // The catalog entry of this document stays behind: an orphan in the middle of the ids.
    await site.database.writer.deleteFrom('document').where('id', '=', GONE).execute()
  })
  afterAll(async () => {
    await site?.close()
  })
  beforeEach(async () => {
    watch.reset()
    if ((await readState(site.app)).mode !== 'normal') await switchTo(site.app, BOSS, 'normal')
  })

  it('rebuilds a damaged catalog so that search answers exactly as a freshly built one', async () => {
    await damageCatalog(site.database)
    const queries = await queriesFor(site.database)
    const reference = await freshBuild(kind, site.database, queries)
    expect(reference.documents).toBe(DOCS)
    // The damage shows: the answers differ from the reference before the reindex.
    const damaged = await searchAnswers(site.app, queries)
    expect(damaged.xylophone).toHaveLength(CORRUPTED.length)
    expect(damaged.phantom).toHaveLength(ORPHANS.length)
    expect(damaged).not.toEqual(reference.answers)

    const started = Date.now()
    const id = await startReindex(site.app, BOSS)
    const task = await finished(site.app, id)
    expect(task).toEqual({
      id,
      kind: 'reindex',
      state: 'done',
      done: DOCS,
      total: DOCS,
      startedAt: expect.stringMatching(ISO_TIMESTAMP),
      finishedAt: expect.stringMatching(ISO_TIMESTAMP),
      error: null,
      startedBy: 'boss',
      // 349 documents in batches of 100: 100, 100, 100 and a short last batch of 49, which
      // ends the run (a batch shorter than 100 is the last one).
      batches: Math.ceil(DOCS / REINDEX_BATCH),
      conflicts: 0,
      retries: 0,
    })
    expect(Date.parse(task.startedAt)).toBeGreaterThanOrEqual(started - 1000)
    expect(Date.parse(task.finishedAt)).toBeGreaterThanOrEqual(Date.parse(task.startedAt))

    const answers = await searchAnswers(site.app, queries)
    expect(answers).toEqual(reference.answers)
    expect(answers.xylophone).toEqual([])
    expect(answers.phantom).toEqual([])
    const rows = await catalogRows(site.database)
    expect(rows).toEqual(reference.rows)
    // One entry per document, with the document's slug and title.
    const docs = await site.database.writer.selectFrom('document').select(['id', 'slug', 'title']).orderBy('id').execute()
    expect(rows.map((row) => ({ id: Number(row.id), slug: row.slug, title: row.title }))).toEqual(docs)
  })

  it('persists its progress with every batch, in the batch\'s own transaction: the checkpoint is the last document id indexed', async () => {
    const id = await startReindex(site.app, BOSS)
    await finished(site.app, id)
    // Document 42 is gone, so the first 100 documents end at id 101, and so on.
    expect(watch.progress).toEqual([
      { id, done: 100, total: DOCS, batches: 1, conflicts: 0, retries: 0, checkpoint: { lastId: 101 } },
      { id, done: 200, total: DOCS, batches: 2, conflicts: 0, retries: 0, checkpoint: { lastId: 201 } },
      { id, done: 300, total: DOCS, batches: 3, conflicts: 0, retries: 0, checkpoint: { lastId: 301 } },
      { id, done: DOCS, total: DOCS, batches: 4, conflicts: 0, retries: 0, checkpoint: { lastId: SEEDED } },
    ])
    expect(watch.commits.map((commit) => [commit.n, commit.attempt, commit.principal])).toEqual([[1, 1, 'boss'], [2, 1, 'boss'], [3, 1, 'boss'], [4, 1, 'boss']])
    const row = await taskRow(site.database, id)
    expect(row).toMatchObject({
      kind: 'reindex',
      state: 'done',
      done: DOCS,
      total: DOCS,
      checkpoint: { lastId: SEEDED },
      started_by: 'boss',
      started_by_role: 'manager',
      owner: 'reindex-a',
      error: null,
      batches: 4,
      result: { batches: 4, conflicts: 0, retries: 0 },
    })
    expect(row.heartbeat_at).toMatch(ISO_TIMESTAMP)
  })

  it('an edit of a document of the batch in flight, between its read and its commit, is a conflict: the batch is retried and the catalog is still exact', async () => {
    await damageCatalog(site.database)
    const [target] = await site.database.writer.selectFrom('document').select(['id', 'slug', 'version']).where('id', '=', 150).execute()
    let edited = false
    watch.before = async (batch) => {
      // The second batch (ids 102..201) has read its documents; a member edits one of them.
      if (batch.n !== 2 || edited) return
      edited = true
      const response = await site.app.inject({
        method: 'PUT',
        url: `/api/docs/${target!.slug}`,
        headers: { authorization: ANN },
        payload: { title: 'Zebrafish bracket, 50 mm', body: 'A zebrafish bracket, edited while the catalog was rebuilt.' },
      })
      expect(response.statusCode, response.body).toBe(200)
    }
    const id = await startReindex(site.app, BOSS)
    const task = await finished(site.app, id)
    expect(task).toMatchObject({ state: 'done', done: DOCS, total: DOCS, batches: 4, conflicts: 1, retries: 1, error: null })
    // The second batch committed in its second attempt, which read the edited document.
    expect(watch.commits.map((commit) => [commit.n, commit.attempt])).toEqual([[1, 1], [2, 1], [3, 2], [4, 1], [5, 1]])
    expect(watch.progress.map((p) => [p.done, p.conflicts, p.retries])).toEqual([[100, 0, 0], [200, 1, 1], [300, 1, 1], [DOCS, 1, 1]])
    const row = await site.database.writer.selectFrom('document').select(['title', 'version', 'updated_by']).where('id', '=', 150).executeTakeFirstOrThrow()
    expect(row).toEqual({ title: 'Zebrafish bracket, 50 mm', version: target!.version + 1, updated_by: 'ann' })
    const hits = (await site.app.inject({ url: '/api/search?q=zebrafish' })).json().hits
    expect(hits.map((hit: { slug: string }) => hit.slug)).toEqual([target!.slug])
    await expectExactCatalog(kind, site)
  })

  it('a batch whose every attempt conflicts is counted and tried again, and lands', async () => {
    await damageCatalog(site.database)
    let edits = 0
    watch.before = async (batch) => {
      // All three attempts of the second batch (QUIESCE_RETRY_ATTEMPTS = 3) meet an edit.
      if (batch.n < 2 || batch.n > 4) return
      edits++
      const response = await site.app.inject({
        method: 'PUT', url: '/api/docs/' + (await site.database.writer.selectFrom('document').select('slug').where('id', '=', 160).executeTakeFirstOrThrow()).slug, headers: { authorization: ANN }, payload: { title: `Edited ${edits} times`, body: `edit number ${edits}` },
      })
      expect(response.statusCode, response.body).toBe(200)
    }
    const id = await startReindex(site.app, BOSS)
    const task = await finished(site.app, id)
    expect(edits).toBe(3)
    // Three failed commits: two retried by the unit of work, then the batch as a whole again.
    expect(task).toMatchObject({ state: 'done', done: DOCS, total: DOCS, batches: 4, conflicts: 3, retries: 3, error: null })
    expect(watch.commits.map((commit) => [commit.n, commit.attempt])).toEqual([[1, 1], [2, 1], [3, 2], [4, 3], [5, 1], [6, 1], [7, 1]])
    await expectExactCatalog(kind, site)
  })

  it('cancel: a queued task is cancelled at once; a running one stops after the batch in flight, and no further batch runs', async () => {
    await damageCatalog(site.database)
    const held = deferred()
    const entered = deferred()
    watch.before = async (batch) => {
      if (batch.n !== 2) return
      entered.resolve()
      await held.promise
    }
    const running = await startReindex(site.app, BOSS)
    await entered.promise
    // This instance runs one task at a time: the second one waits in the queue.
    const queued = await startReindex(site.app, BOSS)
    expect((await taskJson(site.app, queued)).state).toBe('queued')

    const cancelQueued = await site.app.inject({ method: 'POST', url: `/api/tasks/${queued}/cancel`, headers: { authorization: BOSS } })
    expect(cancelQueued.statusCode).toBe(200)
    expect(cancelQueued.json()).toMatchObject({ id: queued, state: 'cancelled', done: 0, batches: 0, finishedAt: expect.stringMatching(ISO_TIMESTAMP) })

    const cancelRunning = await site.app.inject({ method: 'POST', url: `/api/tasks/${running}/cancel`, headers: { authorization: BOSS } })
    expect(cancelRunning.statusCode).toBe(200)
    expect(cancelRunning.json()).toMatchObject({ id: running, state: 'cancelling', done: 100, batches: 1, finishedAt: null })
    held.resolve()

    const task = await finished(site.app, running)
    // The batch in flight landed; the runner saw the cancellation before the next one.
    expect(task).toMatchObject({ state: 'cancelled', done: 200, total: DOCS, batches: 2, error: null, finishedAt: expect.stringMatching(ISO_TIMESTAMP) })
    expect(watch.commits).toHaveLength(2)
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(watch.commits).toHaveLength(2)
    expect(await taskJson(site.app, running)).toEqual(task)
    expect((await taskRow(site.database, running)).checkpoint).toEqual({ lastId: 201 })
    expect(await taskJson(site.app, queued)).toMatchObject({ state: 'cancelled', done: 0, batches: 0 })
    // Entries after the last batch are as the damage left them.
    const corrupted = await site.app.inject({ url: '/api/search?q=xylophone' })
    expect(corrupted.json().hits.map((hit: { slug: string }) => hit.slug)).toHaveLength(1)

    // A finished task cannot be cancelled any more: the answer is the task as it is.
    const again = await site.app.inject({ method: 'POST', url: `/api/tasks/${running}/cancel`, headers: { authorization: BOSS } })
    expect(again.json()).toEqual(task)
    // An unknown task is a 404.
    const missing = await site.app.inject({ method: 'POST', url: '/api/tasks/99999/cancel', headers: { authorization: BOSS } })
    expect(missing.statusCode).toBe(404)
  })

  it('a task started by a manager who is not the maintainer waits, paused, during concurrent mode and completes after normal', async () => {
    await damageCatalog(site.database)
    await switchTo(site.app, BOSS, 'concurrent', { reason: 'boss holds the site' })
    const id = await startReindex(site.app, DEPUTY)
    const paused = await until('the task to pause', async () => {
      const task = await taskJson(site.app, id)
      return task.state === 'paused' ? task : undefined
    })
    expect(paused).toMatchObject({ state: 'paused', done: 0, total: DOCS, batches: 0, startedBy: 'deputy', finishedAt: null })
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(await taskJson(site.app, id)).toMatchObject({ state: 'paused', done: 0, batches: 0 })
    expect(watch.commits).toEqual([])

    await switchTo(site.app, BOSS, 'normal')
    const task = await finished(site.app, id)
    expect(task).toMatchObject({ state: 'done', done: DOCS, total: DOCS, batches: 4, conflicts: 0, startedBy: 'deputy' })
    expect(watch.commits.every((commit) => commit.principal === 'deputy')).toBe(true)
    await expectExactCatalog(kind, site)
  })

  it('the maintainer\'s reindex completes in concurrent mode while members\' writes are refused and visitors search', async () => {
    await damageCatalog(site.database)
    await switchTo(site.app, BOSS, 'concurrent', { reason: 'rebuilding the catalog' })
    const held = deferred()
    const entered = deferred()
    watch.before = async (batch) => {
      if (batch.n !== 2) return
      entered.resolve()
      await held.promise
    }
    const id = await startReindex(site.app, BOSS)
    await entered.promise
    const refused = await site.app.inject({ method: 'PUT', url: '/api/docs/written-during-reindex', headers: { authorization: ANN }, payload: { title: 'Not now', body: 'refused' } })
    expect(refused.statusCode).toBe(503)
    expect(refused.json().code).toBe('QUIESCE_READ_ONLY')
    expect((await site.app.inject({ url: '/api/search?q=brass' })).statusCode).toBe(200)
    expect(await taskJson(site.app, id)).toMatchObject({ state: 'running', done: 100 })
    held.resolve()

    const task = await finished(site.app, id)
    expect(task).toMatchObject({ state: 'done', done: DOCS, total: DOCS, batches: 4, conflicts: 0, retries: 0, startedBy: 'boss', error: null })
    expect(await site.database.writer.selectFrom('document').select('id').where('slug', '=', 'written-during-reindex').executeTakeFirst()).toBeUndefined()
    expect((await readState(site.app)).mode).toBe('concurrent')
    await expectExactCatalog(kind, site)
  })

  it('the control panel lists the tasks and shows one with a progress bar and its counts, to managers only', async () => {
    const id = await startReindex(site.app, BOSS)
    await finished(site.app, id)
    const boss = await signedInBrowser(site.app, 'maintainer')
    const list = await site.app.inject({ url: '/manage/tasks', headers: { cookie: boss.cookie } })
    expect(list.statusCode).toBe(200)
    const listMain = mainOf(list.body)
    expect(listMain).toContain(`<th scope="row" data-label="Task"><a href="/manage/tasks/${id}">Catalog rebuild #${id}</a></th>`)
    expect(listMain).toContain('<td data-label="Progress">349 / 349</td>')
    expect(listMain).toContain('<td data-label="Result">catalog rebuilt</td>')
    // Each kind of task says what it produces and where.
    expect(listMain).toContain('<h3 id="kind-reindex">Rebuild the catalog</h3>')
    expect(listMain).toContain('<strong>Produces:</strong> nothing to download. Search answers from the rebuilt index as each batch lands.')
    expect(listMain).toContain('<h3 id="kind-export">Export all data</h3>')
    expect(listMain).toContain('<strong>Produces:</strong> a file to download from the task\'s page when it is done: JSON Lines, UTF-8 (<code>quiesce-export</code> format 1, <code>.jsonl</code>), also kept on the server in the data directory\'s <code>exports/</code> folder')
    expect(listMain).toContain('<form method="post" action="/manage/tasks/reindex" class="inline">')

    const page = await site.app.inject({ url: `/manage/tasks/${id}`, headers: { cookie: boss.cookie } })
    expect(page.statusCode).toBe(200)
    const pageMain = mainOf(page.body)
    expect(pageMain).toContain(`<h1>Catalog rebuild #${id}</h1>`)
    expect(pageMain).toContain(`<progress max="${DOCS}" value="${DOCS}" aria-label="Progress of task ${id}"></progress>`)
    expect(pageMain).toContain('<strong data-progress="percent">100%</strong>')
    expect(pageMain).toContain(`<span data-progress="count">${DOCS} of ${DOCS}</span>`)
    expect(pageMain).toContain('<strong data-progress="state">done</strong>')
    expect(pageMain).toContain('<dd data-progress="batches">4</dd>')
    expect(pageMain).toContain('<dd data-progress="conflicts">0 (retried 0)</dd>')
    expect(pageMain).toContain('<dd>reindex-a</dd>')
    // A finished task has no cancel button.
    expect(pageMain).not.toContain(`action="/manage/tasks/${id}/cancel"`)

    // A running task's page shows its partial progress and a cancel button.
    const held = deferred()
    const entered = deferred()
    watch.reset()
    watch.before = async (batch) => {
      if (batch.n !== 2) return
      entered.resolve()
      await held.promise
    }
    const running = await startReindex(site.app, BOSS)
    await entered.promise
    const partial = mainOf((await site.app.inject({ url: `/manage/tasks/${running}`, headers: { cookie: boss.cookie } })).body)
    expect(partial).toContain(`<progress max="${DOCS}" value="100" aria-label="Progress of task ${running}"></progress>`)
    expect(partial).toContain(`<strong data-progress="percent">${Math.floor(100 * 100 / DOCS)}%</strong>`)
    expect(partial).toContain(`<span data-progress="count">100 of ${DOCS}</span>`)
    expect(partial).toContain(`<form method="post" action="/manage/tasks/${running}/cancel" data-progress="cancel">`)
    // The list offers to cancel it too, and its form works.
    const listed = await site.app.inject({ url: '/manage/tasks', headers: { cookie: boss.cookie } })
    const listedMain = mainOf(listed.body)
    expect(listedMain).toContain('<td data-label="State">running</td>')
    expect(listedMain).toContain(`<form method="post" action="/manage/tasks/${running}/cancel" class="inline">`)
    expect(listedMain).toContain(`<button type="submit" class="small danger" aria-label="Cancel Catalog rebuild #${running}">Cancel</button>`)
    expect(listedMain.match(/>Cancel<\/button>/g)).toHaveLength(1)
    const cancelled = await site.app.inject({
      method: 'POST',
      url: `/manage/tasks/${running}/cancel`,
      headers: { cookie: boss.cookie, 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ _csrf: csrfTokenIn(listed.body) }).toString(),
    })
    expect(cancelled.statusCode).toBe(303)
    expect(cancelled.headers.location).toBe(`/manage/tasks/${running}`)
    held.resolve()
    expect(await finished(site.app, running)).toMatchObject({ state: 'cancelled' })
    expect(mainOf((await site.app.inject({ url: '/manage/tasks', headers: { cookie: boss.cookie } })).body)).not.toContain(`action="/manage/tasks/${running}/cancel"`)

    await addUser(site.database, 'mel', 'member')
    const mel = await signIn(site.app, 'mel', 'mel-password')
    for (const url of ['/manage/tasks', `/manage/tasks/${id}`]) {
      const visitor = await site.app.inject({ url })
      expect(visitor.statusCode, url).toBe(401)
      const member = await site.app.inject({ url, headers: { cookie: mel.cookie } })
      expect(member.statusCode, url).toBe(403)
      expect(mainOf(member.body)).toContain('<code>QUIESCE_FORBIDDEN</code>')
    }
    for (const [method, url] of [['POST', '/api/tasks/reindex'], ['GET', `/api/tasks/${id}`], ['POST', `/api/tasks/${id}/cancel`]] as const) {
      expect((await site.app.inject({ method, url })).statusCode, url).toBe(401)
      const member = await site.app.inject({ method, url, headers: { authorization: ANN } })
      expect(member.statusCode, url).toBe(403)
      expect(member.json().code).toBe('QUIESCE_FORBIDDEN')
    }
    expect((await site.app.inject({ url: '/api/tasks/99999', headers: { authorization: BOSS } })).statusCode).toBe(404)
  })

  it('GET /api/tasks/:id/events streams progress over HTTP until the task is done, then ends', async () => {
    const address = await site.app.listen({ port: 0, host: '127.0.0.1' })
    const { port } = new URL(address)
    const gates = [deferred(), deferred()]
    const entered = [deferred(), deferred()]
    watch.before = async (batch) => {
      const i = batch.n - 1
      if (i < gates.length) {
        entered[i]!.resolve()
        await gates[i]!.promise
      }
    }
    const id = await startReindex(site.app, BOSS)
    await entered[0]!.promise

    const events: Array<{ event: string, data: Record<string, unknown> }> = []
    const seen: Array<(event: { data: Record<string, unknown> }) => boolean> = []
    const waitFor = (predicate: (event: { data: Record<string, unknown> }) => boolean) => new Promise<void>((resolve) => {
      if (events.some(predicate)) return resolve()
      seen.push((event) => { if (predicate(event)) { resolve(); return true } return false })
    })
    const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port, path: `/api/tasks/${id}/events`, headers: { authorization: BOSS, accept: 'text/event-stream' } }, resolve).on('error', reject)
    })
    expect(response.statusCode).toBe(200)
    expect(response.headers['content-type']).toMatch(/^text\/event-stream/)
    const ended = new Promise<void>((resolve) => response.on('end', resolve))
    let buffer = ''
    response.setEncoding('utf8')
    response.on('data', (chunk: string) => {
      buffer += chunk
      for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
        const block = buffer.slice(0, end)
        buffer = buffer.slice(end + 2)
        const fields = Object.fromEntries(block.split('\n').filter((line) => line !== '' && !line.startsWith(':')).map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trim()]))
        if (fields.event === undefined && fields.data === undefined) continue
        const event = { event: fields.event!, data: JSON.parse(fields.data!) }
        events.push(event)
        for (let i = seen.length - 1; i >= 0; i--) if (seen[i]!(event)) seen.splice(i, 1)
      }
    })

    await waitFor((event) => event.data.done === 0)
    gates[0]!.resolve()
    await entered[1]!.promise
    await waitFor((event) => event.data.done === 100)
    gates[1]!.resolve()
    await ended

    expect(events.every((event) => event.event === 'progress')).toBe(true)
    expect(events[0]!.data).toMatchObject({ id, kind: 'reindex', state: 'running', done: 0, total: DOCS })
    expect(events.at(-1)!.data).toMatchObject({ id, kind: 'reindex', state: 'done', done: DOCS, total: DOCS, batches: 4, finishedAt: expect.stringMatching(ISO_TIMESTAMP) })
    expect(Object.keys(events[0]!.data).sort()).toEqual(['at', 'batches', 'conflicts', 'done', 'error', 'finishedAt', 'id', 'kind', 'retries', 'startedAt', 'startedBy', 'state', 'total'])
    const dones = events.map((event) => event.data.done as number)
    expect(dones).toEqual([...dones].sort((a, b) => a - b))
    expect(dones).toContain(100)
    // Each event says something new.
    const texts = events.map((event) => JSON.stringify({ ...event.data, at: undefined }))
    expect(new Set(texts).size).toBe(texts.length)

    // A finished task's stream sends its last state and ends at once.
    const done = await fetch(`${address}/api/tasks/${id}/events`, { headers: { authorization: BOSS, accept: 'text/event-stream' } })
    const text = await done.text()
    expect(text.match(/^event: progress$/gm)).toHaveLength(1)
    expect(text).toContain('"state":"done"')
    // Managers only.
    expect((await fetch(`${address}/api/tasks/${id}/events`, { headers: { authorization: ANN, accept: 'text/event-stream' } })).status).toBe(403)
  })
})

/** A second instance resumes what the first left, from the checkpoint. */
describe.each(DATABASE_KINDS)('reindex resumed on another instance (%s)', (kind) => {
  let first: TestSite
  let firstClosed = false
  let second: FastifyInstance | undefined
  let secondDatabase: Database
  const firstWatch = new BatchWatch(MANAGERS)
  const secondWatch = new BatchWatch(MANAGERS)

  beforeAll(async () => {
    first = await startTestSite(kind, { config: { instanceId: 'instance-1' }, tasks: TIMINGS, configure: (app) => firstWatch.install(app) })
    await addPrincipals(first, ['maintainer'])
    expect(await seedDocuments(first.database.writer, catalogFor(kind), SEEDED)).toBe(SEEDED)
  })
  afterAll(async () => {
    await second?.close()
    if (!firstClosed) await first?.app.close()
    await first?.testDatabase.drop()
  })

  it('an instance that stops releases its task between two batches; the next instance resumes it from the checkpoint', async () => {
    await damageCatalog(first.database)
    const held = deferred()
    const entered = deferred<AbortSignal>()
    firstWatch.before = async (batch) => {
      if (batch.n !== 3) return
      entered.resolve(batch.uow.signal!)
      await held.promise
    }
    const id = await startReindex(first.app, BOSS)
    const signal = await entered.promise
    expect(await taskRow(first.database, id)).toMatchObject({ state: 'running', owner: 'instance-1', done: 200, batches: 2, checkpoint: { lastId: 200 } })

    // The instance shuts down while its third batch is about to commit.
    const closing = first.app.close()
    await until('the runner to interrupt the task', () => signal.aborted)
    held.resolve()
    await closing
    firstClosed = true
    expect(firstWatch.progress.map((p) => p.done)).toEqual([100, 200])

    const config = testConfig(first.testDatabase, { instanceId: 'instance-2' })
    secondDatabase = await openDatabase(config.database)
    const released = await taskRow(secondDatabase, id)
    expect(released).toMatchObject({ state: 'running', owner: null, done: 200, total: SEEDED, batches: 2, checkpoint: { lastId: 200 }, finished_at: null })

    second = await buildApp({ config, database: secondDatabase, tasks: TIMINGS })
    secondWatch.install(second)
    await second.ready()
    const task = await finished(second, id)
    expect(task).toMatchObject({ state: 'done', done: SEEDED, total: SEEDED, batches: 4, conflicts: 0, startedBy: 'boss' })
    // It went on from document 201, not from the start.
    expect(secondWatch.progress).toEqual([
      { id, done: 300, total: SEEDED, batches: 3, conflicts: 0, retries: 0, checkpoint: { lastId: 300 } },
      { id, done: SEEDED, total: SEEDED, batches: 4, conflicts: 0, retries: 0, checkpoint: { lastId: SEEDED } },
    ])
    expect((await taskRow(secondDatabase, id)).owner).toBe('instance-2')
    await expectExactCatalog(kind, { app: second, database: secondDatabase })
  })

  it('a task whose instance stopped heartbeating is taken over once the heartbeat is stale, from its checkpoint; a live one is not', async () => {
    secondWatch.reset()
    const db = secondDatabase.writer
    // Damage on both sides of the checkpoint: entry 50 is before it, entry 250 after.
    if (kind === 'sqlite') {
      await sql`update catalog set title = 'Corrupted entry', body = 'xylophone' where rowid in (50, 250, 320)`.execute(db)
    } else {
      await sql`update catalog set title = 'Corrupted entry', body = 'xylophone', search = to_tsvector('english', 'Corrupted entry xylophone') where document_id in (50, 250, 320)`.execute(db)
    }
    const ago = (ms: number) => new Date(Date.now() - ms).toISOString()
    const row = (owner: string, heartbeatAt: string, lastId: number) => ({
      kind: 'reindex',
      state: 'running' as const,
      done: lastId,
      total: SEEDED,
      checkpoint: JSON.stringify({ lastId }),
      started_by: 'boss',
      started_by_role: 'manager',
      started_at: ago(120_000),
      heartbeat_at: heartbeatAt,
      owner,
      batches: lastId / 100,
      conflicts: 0,
      retries: 0,
    })
    const live = await db.insertInto('task').values(row('busy-instance', ago(0), 300)).returning('id').executeTakeFirstOrThrow()
    const dead = await db.insertInto('task').values(row('dead-instance', ago(60_000), 100)).returning('id').executeTakeFirstOrThrow()

    const task = await finished(second!, dead.id)
    expect(task).toMatchObject({ state: 'done', done: SEEDED, total: SEEDED, batches: 4, startedBy: 'boss' })
    expect(secondWatch.progress.map((p) => [p.id, p.done, p.checkpoint])).toEqual([
      [dead.id, 200, { lastId: 200 }], [dead.id, 300, { lastId: 300 }], [dead.id, SEEDED, { lastId: SEEDED }],
    ])
    expect((await taskRow(secondDatabase, dead.id)).owner).toBe('instance-2')
    // The batches before the checkpoint were not run again: entry 50 is still as it was.
    const hits = (await second!.inject({ url: '/api/search?q=xylophone' })).json().hits.map((hit: { slug: string }) => hit.slug)
    const slugOf = async (id: number) => (await db.selectFrom('document').select('slug').where('id', '=', id).executeTakeFirstOrThrow()).slug
    expect(hits).toEqual([await slugOf(50)])

    // The live task kept its owner while its heartbeat was fresh...
    expect(await taskRow(secondDatabase, live.id)).toMatchObject({ owner: 'busy-instance', state: 'running', done: 300 })
    // ...and is taken over once it is stale, from its own checkpoint.
    const taken = await finished(second!, live.id)
    expect(taken).toMatchObject({ state: 'done', done: SEEDED, batches: 4 })
    expect((await taskRow(secondDatabase, live.id)).owner).toBe('instance-2')
    expect(secondWatch.progress.filter((p) => p.id === live.id).map((p) => p.done)).toEqual([SEEDED])
  })
})
