import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import BetterSqlite3 from 'better-sqlite3'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { buildApp } from '../app/app.js'
import { seedDocuments } from '../app/content/seed.js'
import { openDatabase, type Database } from '../app/db/database.js'
import { csrfTokenIn, testConfig, type Browser } from './helpers/app.js'
import { expectCatalogAgrees, expectNothingLost, expectSearchFinds, sessionCookieFrom, writeFigures } from './helpers/faults.js'
import { codeOf, httpRequest } from './helpers/http.js'
import { addPrincipals, basicOf, signedInBrowser } from './helpers/principals.js'
import { BatchWatch, taskRow, until } from './helpers/tasks.js'
import { checkWrites, WriteLoad } from './helpers/write-load.js'

const BOSS = basicOf('maintainer')
const ANN = basicOf('member')

/**
 * A SQLite outage, honestly: the disk is really full. The site's data dir is a small tmpfs that
 * the test fills with a file until write(2) fails with ENOSPC; SQLite then fails commits with
 * SQLITE_FULL, as on any full disk, while reads go on. (A file made read-only would prove
 * nothing here: the tests run as root, whom file modes do not stop, and for anyone a connection
 * that is open keeps writing whatever the file's mode becomes.) Mounting needs root, as the
 * tests have; without it the test fails, it does not skip.
 */
describe('a full disk under SQLite', () => {
  let mount: string
  let watchdog: ChildProcess | undefined
  let file: string
  let database: Database
  let app: FastifyInstance
  let base: string
  let ann: Browser
  const watch = new BatchWatch(new Set(['boss']))
  const figures: Record<string, unknown> = {}

  beforeAll(async () => {
    mount = mkdtempSync(path.join(tmpdir(), 'quiesce-full-disk-'))
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=32m,mode=0700', 'quiesce-full-disk', mount])
    // Unmounted also if this process is killed (vitest ends a worker whose test hangs without its hooks).
    watchdog = spawn('sh', ['-c', `while [ -d /proc/${process.pid} ]; do sleep 2; done; umount -l "$1"; rm -rf "$1"`, 'watchdog', mount], { detached: true, stdio: 'ignore' })
    watchdog.unref()
    const dataDir = path.join(mount, 'data')
    file = path.join(dataDir, 'quiesce.sqlite')
    const config = testConfig({ url: { kind: 'sqlite', file }, dataDir, drop: async () => {} }, { instanceId: 'full-disk' })
    database = await openDatabase(config.database)
    await addPrincipals({ database }, ['maintainer', 'member'])
    app = await buildApp({ config, database, tasks: { pollMs: 100, heartbeatMs: 200, staleAfterMs: 3000 } })
    watch.install(app)
    await app.listen({ host: '127.0.0.1', port: 0 })
    base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
    await seedDocuments(database.writer, app.catalog, 450)
    ann = await signedInBrowser(app, 'member')
  })

  afterAll(async () => {
    await app?.close()
    if (mount !== undefined) {
      execFileSync('umount', ['-l', mount])
      rmSync(mount, { recursive: true, force: true })
      watchdog?.kill()
    }
    console.info('SQLite full disk figures', figures)
  })

  /**
   * Fills the disk. The WAL is emptied first, so the next commit needs new blocks: on a real
   * full disk too, commits only go on while the WAL fits in the blocks it already has.
   */
  function fillDisk (): () => void {
    const connection = new BetterSqlite3(file, { fileMustExist: true })
    connection.pragma('busy_timeout = 5000')
    connection.pragma('wal_checkpoint(TRUNCATE)')
    connection.close()
    const filler = path.join(mount, 'filler')
    const fd = openSync(filler, 'w')
    for (const size of [1 << 20, 1 << 12, 1]) {
      const chunk = Buffer.alloc(size, 1)
      try {
        for (;;) writeSync(fd, chunk)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err
      }
    }
    closeSync(fd)
    let freed = false
    return () => {
      if (!freed) rmSync(filler)
      freed = true
    }
  }

  it('refuses writes with a clear 503 and serves reads while the disk is full; when there is room again it goes on by itself', async () => {
    const load = new WriteLoad({ targets: () => [base], authorization: () => ANN, writers: 3, docsPerWriter: 5, prefix: 'full' })
    load.start()
    onTestFinished(() => load.stop())
    await load.acknowledged(30)

    // A reindex is under way: the disk fills between two of its batches.
    let free: (() => void) | undefined
    watch.before = async (batch) => {
      if (batch.n === 2 && free === undefined) free = fillDisk()
    }
    onTestFinished(() => free?.())
    const started = await app.inject({ method: 'POST', url: '/api/tasks/reindex', headers: { authorization: BOSS } })
    expect(started.statusCode).toBe(202)
    const id = started.json().id as number
    await until('the disk to be full', () => free !== undefined)
    const fullAt = Date.now()

    await until('/healthz to say unavailable', async () => (await httpRequest(`${base}/healthz`)).status === 503, 15_000)
    figures.msUntilHealthzSaidUnavailable = Date.now() - fullAt
    // Writes: a clear 503, the form with what was typed, sign-in explains itself.
    const put = await httpRequest(`${base}/api/docs/full-extra`, { method: 'PUT', headers: { authorization: ANN }, body: { title: 'no room', body: 'for this' } })
    expect(put.status).toBe(503)
    expect(JSON.parse(put.body)).toEqual({ statusCode: 503, code: 'QUIESCE_STATE_UNAVAILABLE', error: 'Service Unavailable', message: expect.stringContaining('nothing was saved') })
    const typed = 'Typed while the disk was full.'
    const form = await httpRequest(`${base}/docs`, {
      method: 'POST',
      headers: { cookie: ann.cookie },
      body: new URLSearchParams({ _csrf: ann.csrf, slug: 'full-typed', title: 'Typed', body: typed }).toString(),
    })
    expect(form.status).toBe(503)
    expect(form.body).toContain('Not saved')
    expect(form.body).toContain(typed)
    const loginPage = await httpRequest(`${base}/login`)
    expect(loginPage.status).toBe(200)
    expect(loginPage.body).toContain('Sign-in is unavailable right now')
    const signInNow = await httpRequest(`${base}/login`, {
      method: 'POST',
      headers: { cookie: sessionCookieFrom(loginPage.headers) },
      body: new URLSearchParams({ _csrf: csrfTokenIn(loginPage.body), username: 'boss', password: 'boss-password' }).toString(),
    })
    expect(signInNow.status).toBe(503)
    expect(signInNow.body).toContain('QUIESCE_STATE_UNAVAILABLE')
    const change = await httpRequest(`${base}/api/maintenance`, { method: 'PUT', headers: { authorization: BOSS }, body: { mode: 'concurrent', expectedVersion: 1 } })
    expect(change.status).toBe(503)
    expect(codeOf(change)).toBe('QUIESCE_STATE_UNAVAILABLE')
    // Reads need no room: pages, search and the API answer, signed in or not.
    for (const [url, headers] of [['/', { cookie: ann.cookie }], ['/docs', {}], ['/search?q=brass', {}], ['/api/docs/full-w0-0', {}], ['/api/search?q=brass', {}], ['/docs/new', { cookie: ann.cookie }]] as const) {
      const answer = await httpRequest(`${base}${url}`, { headers })
      expect(answer.status, `${url}: ${answer.body.slice(0, 200)}`).toBe(200)
    }
    expect(JSON.parse((await httpRequest(`${base}/api/maintenance`)).body)).toMatchObject({ mode: 'normal', stale: true })
    await new Promise((resolve) => setTimeout(resolve, 1000))
    expect((await taskRow(database, id)).state).toBe('running')

    const freedAt = Date.now()
    free!()
    await until('/healthz to say ok', async () => (await httpRequest(`${base}/healthz`)).status === 200, 20_000)
    figures.msUntilHealthzSaidOkAfterRoom = Date.now() - freedAt
    await load.acknowledged(30, 20_000)
    await load.stop()
    const task = await until('the reindex to end', async () => {
      const row = await taskRow(database, id)
      return ['done', 'failed', 'cancelled'].includes(row.state) ? row : undefined
    }, 30_000)
    expect(task.state, task.error ?? '').toBe('done')
    const signedIn = await httpRequest(`${base}/docs/new`, { headers: { cookie: ann.cookie } })
    expect(signedIn.status).toBe(200)
    expect(signedIn.body).toContain('ann')
    expect((await httpRequest(`${base}/api/docs/full-extra`, { method: 'PUT', headers: { authorization: ANN }, body: { title: 'room again', body: 'saved' } })).status).toBe(201)

    const check = await checkWrites(database, load.attempts)
    const during = load.attempts.filter((a) => a.startedAt >= fullAt && a.startedAt + a.ms <= freedAt)
    figures['disk full'] = writeFigures(check, Math.max(...during.map((a) => a.ms)))
    expectNothingLost(check)
    expect(during.length).toBeGreaterThan(0)
    for (const attempt of during) {
      expect(attempt.status, attempt.error ?? '').toBe(503)
      expect(attempt.code).toBe('QUIESCE_STATE_UNAVAILABLE')
    }
    expect(await database.writer.selectFrom('document').select('id').where('slug', '=', 'full-typed').executeTakeFirst()).toBeUndefined()
    await expectCatalogAgrees(database)
    await expectSearchFinds(base, check)
  })
})
