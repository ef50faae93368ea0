import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { buildApp } from '../app/app.js'
import { principalFor } from '../app/auth/principal.js'
import { openDatabase, type Database } from '../app/db/database.js'
import { openPostgres, POSTGRES_TIMEOUTS, type PostgresTimeouts } from '../app/db/postgres.js'
import { csrfTokenIn, testConfig, type Browser } from './helpers/app.js'
import { expectCatalogAgrees, expectNothingLost, expectSearchFinds, firstEvent, sessionCookieFrom, showSetting, writeFigures } from './helpers/faults.js'
import { codeOf, httpRequest, type HttpAnswer, type HttpOptions } from './helpers/http.js'
import { switchTo } from './helpers/maintenance.js'
import { PostgresServer } from './helpers/postgres-server.js'
import { addPrincipals, basicOf, signedInBrowser } from './helpers/principals.js'
import { deferred, taskRow, until } from './helpers/tasks.js'
import { checkWrites, WriteLoad } from './helpers/write-load.js'

const BOSS = basicOf('maintainer')
const DEPUTY = basicOf('manager')

/**
 * The defaults (POSTGRES_TIMEOUTS) shortened, so that a server that stops answering is given up
 * on in seconds here; the last test checks that the defaults themselves are what sessions get.
 */
const TIMEOUTS: Partial<PostgresTimeouts> = { connectMs: 1000, statementMs: 1500, queryMs: 2500, idleInTransactionMs: 2000 }
/** No answer may take longer while the database is down or hung (the bound is about connectMs + queryMs). */
const BOUND_MS = 10_000
const NO_LEAK = /ECONNREFUSED|Connection terminated|127\.0\.0\.1:\d|\bat .*\.(js|ts):\d/

const figures: Record<string, unknown> = {}

/**
 * PostgreSQL outages, on a throwaway server of the test's own: stopped with `-m immediate` (what
 * clients see of a crash), restarted, and frozen with SIGSTOP (a hung or cut-off server).
 */
describe('a PostgreSQL outage', () => {
  let server: PostgresServer
  let database: Database
  let app: FastifyInstance
  let base: string
  let dataDir: string
  let ann: Browser

  beforeAll(async () => {
    server = await PostgresServer.create()
    const url = await server.createDatabase('quiesce')
    dataDir = mkdtempSync(path.join(tmpdir(), 'quiesce-outage-'))
    const config = testConfig({ url: { kind: 'postgres', url }, dataDir, drop: async () => {} }, { instanceId: 'outage-instance' })
    database = await openDatabase(config.database, { timeouts: TIMEOUTS })
    await addPrincipals({ database }, ['maintainer', 'manager', 'member'])
    // Nobody takes a task over for being stale here: what resumes one after an outage is its own instance.
    app = await buildApp({ config, database, tasks: { pollMs: 100, heartbeatMs: 200, staleAfterMs: 600_000 } })
    await app.listen({ host: '127.0.0.1', port: 0 })
    base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
    ann = await signedInBrowser(app, 'member')
  })

  afterAll(async () => {
    await app?.close()
    await server?.destroy()
    rmSync(dataDir, { recursive: true, force: true })
    console.info('PostgreSQL outage figures', figures)
  })

  /** Every answer while the server is down must come quickly, and must not show what the driver said. */
  async function ask (url: string, options: HttpOptions = {}): Promise<HttpAnswer> {
    const answer = await httpRequest(`${base}${url}`, options)
    expect(answer.body, url).not.toMatch(NO_LEAK)
    expect(answer.ms, url).toBeLessThan(BOUND_MS)
    return answer
  }

  async function restart (): Promise<void> {
    if (!server.running) await server.start()
    await until('/healthz to say ok', async () => (await httpRequest(`${base}/healthz`)).status === 200, 20_000)
  }

  it('a connection cut in the middle of a transaction ends that request with a 503, not the process', async () => {
    const gate = deferred()
    const commit = app.unitOfWork.run(principalFor({ name: 'boss', role: 'manager' }), async (unitOfWork) => {
      unitOfWork.stage(async (transaction) => {
        await transaction.insertInto('commit_log').values({ at: new Date().toISOString(), actor: 'cut' }).execute()
        await gate.promise
        await transaction.insertInto('commit_log').values({ at: new Date().toISOString(), actor: 'cut' }).execute()
      })
    }).then(() => undefined, (err: unknown) => err as { code?: string, statusCode?: number })
    await until('the commit to be between two statements', async () => (await server.query<{ n: string }>("select count(*) as n from pg_stat_activity where state = 'idle in transaction' and application_name = 'quiesce'", 'quiesce'))[0]!.n === '1')
    await server.stop('immediate')
    onTestFinished(restart)
    // The connection, checked out by the commit, learns that it was cut while nobody waits on it.
    await new Promise((resolve) => setTimeout(resolve, 200))
    gate.resolve()
    const outcome = await commit
    expect(outcome).toMatchObject({ code: 'QUIESCE_STATE_UNAVAILABLE', statusCode: 503 })
    await restart()
    expect(await database.writer.selectFrom('commit_log').select('id').where('actor', '=', 'cut').execute()).toEqual([])
  })

  it('while it is down, everything that needs the database answers a clear 503 at once, HTML or JSON, and saves nothing', async () => {
    await server.stop('immediate')
    onTestFinished(restart)
    for (const url of ['/', '/docs', '/search?q=brass', '/docs/some-document']) {
      const answer = await ask(url)
      expect(answer.status, url).toBe(503)
      expect(answer.headers['content-type'], url).toMatch(/^text\/html/)
      expect(answer.body, url).toContain('QUIESCE_STATE_UNAVAILABLE')
      expect(answer.headers['retry-after'], url).toBe('5')
    }
    for (const url of ['/api/docs/some-document', '/api/docs', '/api/search?q=brass']) {
      const answer = await ask(url)
      expect(answer.status, url).toBe(503)
      expect(JSON.parse(answer.body), url).toEqual({ statusCode: 503, code: 'QUIESCE_STATE_UNAVAILABLE', error: 'Service Unavailable', message: expect.stringContaining('database is unavailable right now') })
    }
    for (const [method, url, body] of [['PUT', '/api/docs/written-while-down', { title: 't', body: 'b' }], ['PUT', '/api/maintenance', { mode: 'exclusive', expectedVersion: 1 }], ['POST', '/api/tasks/reindex', undefined]] as const) {
      const answer = await ask(url, { method, headers: { authorization: DEPUTY }, body })
      expect(answer.status, url).toBe(503)
      expect(codeOf(answer), url).toBe('QUIESCE_STATE_UNAVAILABLE')
    }
    // Signing in needs the database (the sessions are there), so the login form says it is not possible now.
    const loginPage = await ask('/login')
    expect(loginPage.status).toBe(200)
    const signInNow = await ask('/login', {
      method: 'POST',
      headers: { cookie: sessionCookieFrom(loginPage.headers) },
      body: new URLSearchParams({ _csrf: csrfTokenIn(loginPage.body), username: 'ann', password: 'ann-password' }).toString(),
    })
    expect(signInNow.status).toBe(503)
    expect(signInNow.body).toMatch(/Sign-in is unavailable right now|QUIESCE_STATE_UNAVAILABLE/)
    await restart()
    expect(await database.writer.selectFrom('document').select('id').where('slug', '=', 'written-while-down').executeTakeFirst()).toBeUndefined()
    expect((await database.writer.selectFrom('maintenance_state').select('mode').executeTakeFirstOrThrow()).mode).toBe('normal')
    expect(await database.writer.selectFrom('task').select('id').execute()).toEqual([])
  })

  it('while it is down, signed-in people still get what needs no database, and a form comes back with what they typed', async () => {
    await server.stop('immediate')
    onTestFinished(restart)
    const cookie = { cookie: ann.cookie }
    expect((await ask('/static/quiesce.css', { headers: cookie })).status).toBe(200)
    expect((await ask('/api/maintenance', { headers: cookie })).status).toBe(200)
    const page = await ask('/maintenance', { headers: cookie })
    expect(page.status).toBe(200)
    expect(page.body).toContain('The site is open')
    expect((await ask('/login', { headers: cookie })).status).toBe(200)
    expect(await firstEvent(`${base}/api/maintenance/events`, ann.cookie)).toContain('"mode":"normal"')
    for (const url of ['/', '/docs/new', '/manage']) {
      const answer = await ask(url, { headers: cookie })
      expect(answer.status, url).toBe(503)
      expect(answer.body, url).toContain('QUIESCE_STATE_UNAVAILABLE')
    }
    const typed = 'Three paragraphs typed while the database was down.'
    const form = await ask('/docs', {
      method: 'POST',
      headers: cookie,
      body: new URLSearchParams({ _csrf: ann.csrf, slug: 'typed-during-outage', title: 'Typed', body: typed }).toString(),
    })
    expect(form.status).toBe(503)
    expect(form.body).toContain('Not saved')
    expect(form.body).toContain(typed)
    const api = await ask('/api/docs/typed-during-outage', { method: 'PUT', headers: { ...cookie, 'x-csrf-token': ann.csrf }, body: { title: 'Typed', body: typed } })
    expect(api.status).toBe(503)
    expect(codeOf(api)).toBe('QUIESCE_STATE_UNAVAILABLE')

    // Back: the session made before the outage works as before, and nothing was saved meanwhile.
    await restart()
    const signedIn = await httpRequest(`${base}/docs/new`, { headers: cookie })
    expect(signedIn.status).toBe(200)
    expect(signedIn.body).toContain('ann')
    expect(await database.writer.selectFrom('document').select('id').where('slug', '=', 'typed-during-outage').executeTakeFirst()).toBeUndefined()
  })

  it('/healthz says unavailable within a few heartbeats, and GET /api/maintenance flags its state as the last one known', async () => {
    const downAt = Date.now()
    await server.stop('immediate')
    onTestFinished(restart)
    const unhealthy = await until('/healthz to say unavailable', async () => {
      const answer = await httpRequest(`${base}/healthz`)
      return answer.status === 503 ? answer : undefined
    }, 15_000)
    figures.msUntilHealthzSaidUnavailable = Date.now() - downAt
    expect(JSON.parse(unhealthy.body)).toEqual({ status: 'unavailable', mode: 'normal', version: 1, instance: 'outage-instance' })
    const state = await ask('/api/maintenance')
    expect(JSON.parse(state.body)).toEqual({ mode: 'normal', version: 1, since: expect.any(String), reason: null, until: null, maintainer: null, stale: true, confirmedAt: expect.any(String) })
    expect(Date.parse(JSON.parse(state.body).confirmedAt)).toBeLessThanOrEqual(downAt + 1000)
    expect((await ask('/login')).body).toContain('Sign-in is unavailable right now')

    const upAt = Date.now()
    await restart()
    figures.msUntilHealthzSaidOkAfterRestart = Date.now() - upAt
    expect(JSON.parse((await httpRequest(`${base}/api/maintenance`)).body)).not.toHaveProperty('stale')
    expect((await httpRequest(`${base}/login`)).body).not.toContain('Sign-in is unavailable right now')
  })

  it('a task the outage interrupts goes on from its checkpoint when the database is back, instead of failing', async () => {
    // Started by a manager who is not the maintainer, the reindex waits, paused, while the site is read-only.
    await switchTo(app, BOSS, 'concurrent', { reason: 'outage drill' })
    const started = await app.inject({ method: 'POST', url: '/api/tasks/reindex', headers: { authorization: DEPUTY } })
    expect(started.statusCode).toBe(202)
    const id = started.json().id as number
    await until('the reindex to wait, paused', async () => (await taskRow(database, id)).state === 'paused')
    await server.stop('immediate')
    onTestFinished(restart)
    // The paused task looks at its row every second: it meets the outage.
    await new Promise((resolve) => setTimeout(resolve, 2500))
    await restart()
    await switchTo(app, BOSS, 'normal')
    const task = await until('the reindex to end', async () => {
      const row = await taskRow(database, id)
      return ['done', 'failed', 'cancelled'].includes(row.state) ? row : undefined
    }, 30_000)
    expect(task.state, task.error ?? '').toBe('done')
  })

  it('under write load, loses no acknowledged write, half-writes nothing, and recovers by itself: pools, LISTEN, heartbeats', async () => {
    const load = new WriteLoad({ targets: () => [base], authorization: () => BOSS, writers: 4, docsPerWriter: 5, prefix: 'pgdown' })
    load.start()
    onTestFinished(() => load.stop())
    await load.acknowledged(40)
    const downAt = Date.now()
    await server.stop('immediate')
    onTestFinished(restart)
    await new Promise((resolve) => setTimeout(resolve, 1500))
    const upAt = Date.now()
    await server.start()
    await load.acknowledged(1, 20_000)
    const firstAfter = load.attempts.find((a) => a.outcome === 'acked' && a.startedAt >= upAt)!
    figures.msUntilAWriteWasAcknowledgedAfterRestart = firstAfter.startedAt + firstAfter.ms - upAt
    await load.acknowledged(40, 20_000)

    // The LISTEN connection is back: a change another instance makes reaches this one at once.
    await until('the LISTEN connection to be back', async () => (await server.query<{ n: string }>("select count(*) as n from pg_stat_activity where application_name = 'quiesce-listener'", 'quiesce'))[0]!.n === '1', 20_000)
    const other = new pg.Client({ connectionString: server.url('quiesce') })
    await other.connect()
    await other.query("update maintenance_state set reason = 'changed elsewhere', version = version + 1 where id = 1")
    await other.query("select pg_notify('quiesce_maintenance', 'changed elsewhere')")
    await other.end()
    await until('the notified change to be applied', () => app.maintenance.state.reason === 'changed elsewhere', 5000)
    await until('a heartbeat after the restart', async () => {
      const row = await database.writer.selectFrom('maintenance_instance').select('heartbeat_at').where('id', '=', 'outage-instance').executeTakeFirst()
      return row !== undefined && Date.parse(row.heartbeat_at) > upAt
    })

    await load.stop()
    const check = await checkWrites(database, load.attempts)
    const during = load.attempts.filter((a) => a.startedAt >= downAt && a.startedAt + a.ms <= upAt)
    figures['stop -m immediate, 1.5 s'] = writeFigures(check, Math.max(...during.map((a) => a.ms)))
    expectNothingLost(check)
    expect(during.length).toBeGreaterThan(0)
    for (const attempt of during) {
      expect(attempt.error, 'every write gets an answer while the database is down').toBeNull()
      expect(attempt.status).toBe(503)
      expect(attempt.code).toBe('QUIESCE_STATE_UNAVAILABLE')
    }
    await expectCatalogAgrees(database)
    await expectSearchFinds(base, check)
  })

  it('gives up on a server that stops answering (frozen) within its timeouts, and recovers when it answers again', async () => {
    const load = new WriteLoad({ targets: () => [base], authorization: () => BOSS, writers: 4, docsPerWriter: 5, prefix: 'pgfrozen' })
    load.start()
    onTestFinished(() => load.stop())
    await load.acknowledged(40)
    const frozenAt = Date.now()
    server.freeze()
    onTestFinished(() => server.thaw())
    // More requests than the pools have connections: some wait for a connection, the others for a server that does not answer.
    const timed = async (url: string, options: HttpOptions = {}) => ({ url, answer: await httpRequest(`${base}${url}`, options) })
    const asked = await Promise.all([
      ...Array.from({ length: 12 }, (_, i) => timed(`/api/docs/pgfrozen-w0-${i % 5}`)),
      ...Array.from({ length: 6 }, () => timed('/')),
      ...Array.from({ length: 6 }, (_, i) => timed(`/api/docs/pgfrozen-extra-${i}`, { method: 'PUT', headers: { authorization: BOSS }, body: { title: 'never', body: 'saved' } })),
      timed('/api/maintenance'),
      timed('/static/quiesce.css'),
    ])
    for (const { url, answer } of asked) {
      expect(answer.body, url).not.toMatch(NO_LEAK)
      if (url === '/api/maintenance' || url === '/static/quiesce.css') {
        expect(answer.status, url).toBe(200)
      } else {
        expect(answer.status, url).toBe(503)
        expect(answer.body, url).toContain('QUIESCE_STATE_UNAVAILABLE')
      }
    }
    await until('/healthz to say unavailable', async () => (await httpRequest(`${base}/healthz`)).status === 503, 15_000)
    figures.msUntilHealthzSaidUnavailableFrozen = Date.now() - frozenAt
    const thawedAt = Date.now()
    server.thaw()
    await until('/healthz to say ok', async () => (await httpRequest(`${base}/healthz`)).status === 200, 20_000)
    figures.msUntilHealthzSaidOkAfterThaw = Date.now() - thawedAt
    await load.acknowledged(20, 20_000)
    await load.stop()

    const check = await checkWrites(database, load.attempts)
    const during = load.attempts.filter((a) => a.startedAt >= frozenAt && a.startedAt < thawedAt)
    const longest = Math.max(...asked.map((a) => a.answer.ms), ...during.map((a) => a.ms))
    figures['frozen (SIGSTOP)'] = writeFigures(check, longest)
    expectNothingLost(check)
    for (const attempt of during) expect(attempt.error, 'every write gets an answer while the server is frozen').toBeNull()
    expect(longest).toBeLessThan(BOUND_MS)
    expect(await database.writer.selectFrom('document').select('id').where('slug', 'like', 'pgfrozen-extra-%').execute()).toEqual([])
    await expectCatalogAgrees(database)
  })

  it('ends a statement that waits too long (statement_timeout): a commit behind a locked state row gets a 503, not a hang', async () => {
    const holder = new pg.Client({ connectionString: server.url('quiesce') })
    await holder.connect()
    try {
      await holder.query('begin')
      await holder.query('select * from maintenance_state where id = 1 for update')
      const answer = await httpRequest(`${base}/api/docs/locked-out`, { method: 'PUT', headers: { authorization: BOSS }, body: { title: 't', body: 'b' } })
      expect(answer.status).toBe(503)
      expect(codeOf(answer)).toBe('QUIESCE_STATE_UNAVAILABLE')
      expect(answer.ms).toBeGreaterThanOrEqual(TIMEOUTS.statementMs! - 100)
      expect(answer.ms).toBeLessThan(BOUND_MS)
    } finally {
      await holder.query('rollback')
      await holder.end()
    }
    expect(await database.writer.selectFrom('document').select('id').where('slug', '=', 'locked-out').executeTakeFirst()).toBeUndefined()
  })

  it('ends a transaction a stuck commit leaves open (idle_in_transaction_session_timeout), so state changes are not blocked for long', async () => {
    // A commit stopped half-way with the state row share-locked, as an instance frozen or cut off mid-commit leaves it.
    const stuck = deferred()
    const commit = app.unitOfWork.run(principalFor({ name: 'boss', role: 'manager' }), async (unitOfWork) => {
      unitOfWork.stage(async () => { await stuck.promise })
    }).then(() => undefined, (err: unknown) => err as { code?: string })
    await until('the commit to hold the state row', async () => (await server.query<{ n: string }>("select count(*) as n from pg_stat_activity where state = 'idle in transaction' and application_name = 'quiesce'", 'quiesce'))[0]!.n === '1')
    // A state change waits for it (FOR UPDATE after its FOR SHARE): each attempt gives up after
    // the statement timeout with a 503, until the server ends the idle transaction.
    const started = Date.now()
    let refused = 0
    for (;;) {
      const changed = await httpRequest(`${base}/api/maintenance`, { method: 'PUT', headers: { authorization: BOSS }, body: { mode: 'concurrent', reason: 'after the stuck commit', expectedVersion: app.maintenance.state.version } })
      if (changed.status === 200) break
      expect(changed.status, changed.body).toBe(503)
      expect(codeOf(changed)).toBe('QUIESCE_STATE_UNAVAILABLE')
      refused++
      expect(Date.now() - started, 'the stuck transaction is ended within its timeout').toBeLessThan(BOUND_MS)
    }
    expect(refused).toBeGreaterThan(0)
    expect(Date.now() - started).toBeGreaterThanOrEqual(TIMEOUTS.idleInTransactionMs! - 200)
    stuck.resolve()
    expect(await commit).toMatchObject({ code: 'QUIESCE_STATE_UNAVAILABLE' })
    await switchTo(app, BOSS, 'normal')
  })

  it('gives both pools the documented timeouts by default', async () => {
    const handles = openPostgres(server.url('quiesce'), () => {})
    try {
      expect(handles.writePool.options).toMatchObject({ connectionTimeoutMillis: POSTGRES_TIMEOUTS.connectMs, idleTimeoutMillis: POSTGRES_TIMEOUTS.idleMs, query_timeout: POSTGRES_TIMEOUTS.queryMs })
      expect(await showSetting(handles.writer, 'statement_timeout')).toBe(`${POSTGRES_TIMEOUTS.statementMs / 1000}s`)
      expect(await showSetting(handles.writer, 'idle_in_transaction_session_timeout')).toBe(`${POSTGRES_TIMEOUTS.idleInTransactionMs / 1000}s`)
      expect(await showSetting(handles.reader, 'statement_timeout')).toBe(`${POSTGRES_TIMEOUTS.statementMs / 1000}s`)
      expect(await showSetting(handles.reader, 'default_transaction_read_only')).toBe('on')
    } finally {
      await handles.reader.destroy()
      await handles.writer.destroy()
    }
  })
})
