import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../app/app.js'
import type { Config } from '../app/config.js'
import { openDatabase, type Database } from '../app/db/database.js'
import { csrfTokenIn, sessionCookieOf, testConfig } from './helpers/app.js'
import { readState, switchTo } from './helpers/maintenance.js'
import { PostgresServer } from './helpers/postgres-server.js'
import { addPrincipals, basicOf } from './helpers/principals.js'
import { until } from './helpers/wait.js'

const BOSS = basicOf('maintainer')
const PRIMARY_ORIGIN = 'https://docs.example.org'

/**
 * An instance whose database is a hot standby serves the site read-only by itself (PRODUCT,
 * issue 9 item 2): pages and search, a notice on every page, 503 QUIESCE_REPLICA for every
 * write, no sign-in, /healthz `replica`, the replicated maintenance state; and it serves
 * normally once the standby is promoted, without a restart. Real streaming replication.
 */
describe('an instance on a hot standby', () => {
  let primaryServer: PostgresServer
  let standbyServer: PostgresServer
  let dataDir: string
  let primaryDb: Database
  let primary: FastifyInstance
  let standbyDb: Database
  let standby: FastifyInstance

  function config (url: string, instanceId: string): Config {
    return testConfig({ url: { kind: 'postgres', url }, dataDir, drop: async () => {} }, { instanceId, primaryOrigin: PRIMARY_ORIGIN })
  }

  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), 'quiesce-standby-'))
    primaryServer = await PostgresServer.create()
    const primaryConfig = config(primaryServer.url(), 'on-primary')
    primaryDb = await openDatabase(primaryConfig.database)
    primary = await buildApp({ config: primaryConfig, database: primaryDb })
    await primary.ready()
    await addPrincipals({ database: primaryDb }, ['maintainer'])
    const saved = await primary.inject({ method: 'PUT', url: '/api/docs/replicated', headers: { authorization: BOSS }, payload: { title: 'Replicated', body: 'written on the primary, read on the copy' } })
    expect(saved.statusCode, saved.body).toBe(201)

    standbyServer = await primaryServer.createStandby()
    const standbyConfig = config(standbyServer.url(), 'on-standby')
    standbyDb = await openDatabase(standbyConfig.database, { primaryUrl: primaryServer.url() })
    standby = await buildApp({ config: standbyConfig, database: standbyDb })
    await standby.ready()
  }, 120_000)

  afterAll(async () => {
    await standby?.close()
    await primary?.close()
    await standbyServer?.destroy()
    await primaryServer?.destroy()
    rmSync(dataDir, { recursive: true, force: true })
  })

  it('knows its database is a standby, and says so on /healthz', async () => {
    expect(standbyDb.standby).toBe(true)
    expect(primaryDb.standby).toBe(false)
    const health = await standby.inject({ url: '/healthz' })
    expect(health.statusCode).toBe(200)
    expect(health.json()).toMatchObject({ status: 'replica', mode: 'normal', instance: 'on-standby' })
    expect((await primary.inject({ url: '/healthz' })).json()).toMatchObject({ status: 'ok' })
  })

  it('serves pages and search, each saying it is a read-only copy and where the primary is', async () => {
    for (const url of ['/', '/docs', '/docs/replicated', '/search?q=replicated']) {
      const page = await standby.inject({ url, headers: { accept: 'text/html' } })
      expect(page.statusCode, url).toBe(200)
      expect(page.body, url).toContain('This is a read-only copy of the site.')
      expect(page.body, url).toContain(`href="${PRIMARY_ORIGIN}"`)
      expect(page.headers['quiesce-replica'], url).toBe('standby')
    }
    expect((await standby.inject({ url: '/docs/replicated' })).body).toContain('written on the primary, read on the copy')
    expect((await standby.inject({ url: '/search?q=replicated' })).body).toContain('/docs/replicated')
    expect((await standby.inject({ url: '/api/docs/replicated' })).json()).toMatchObject({ slug: 'replicated', title: 'Replicated' })
    // The primary's pages have no such notice.
    expect((await primary.inject({ url: '/docs/replicated' })).body).not.toContain('read-only copy')
  })

  it('refuses every write with 503 QUIESCE_REPLICA, and nothing reaches the database', async () => {
    const api = await standby.inject({ method: 'PUT', url: '/api/docs/on-copy', headers: { authorization: BOSS }, payload: { title: 'No', body: 'not here' } })
    expect(api.statusCode).toBe(503)
    expect(api.json()).toMatchObject({ statusCode: 503, code: 'QUIESCE_REPLICA' })
    expect(api.headers['quiesce-replica']).toBe('standby')
    expect(api.json().message).toContain(`Make your change at ${PRIMARY_ORIGIN}`)
    const form = await standby.inject({ method: 'POST', url: '/docs', headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' }, payload: 'slug=on-copy&title=No&body=not+here' })
    expect(form.statusCode).toBe(503)
    expect(form.headers['content-type']).toMatch(/^text\/html/)
    expect(form.body).toContain('nothing can be saved here')
    const mode = await standby.inject({ method: 'PUT', url: '/api/maintenance', headers: { authorization: BOSS }, payload: { mode: 'concurrent', expectedVersion: 1 } })
    expect(mode.json()).toMatchObject({ code: 'QUIESCE_REPLICA' })
    expect(await primaryServer.query("select slug from document where slug = 'on-copy'")).toEqual([])
    expect((await readState(primary)).mode).toBe('normal')
  })

  it('explains that signing in is not possible here, and signs nobody in', async () => {
    const page = await standby.inject({ url: '/login' })
    expect(page.statusCode).toBe(200)
    expect(page.body).toContain('Signing in is not possible on this read-only copy')
    expect(page.body).toContain(`href="${PRIMARY_ORIGIN}/login"`)
    expect(page.body).not.toContain('name="password"')
    // The primary's form and session cookie carry no authority here either.
    const form = await primary.inject({ url: '/login' })
    const attempt = await standby.inject({
      method: 'POST',
      url: '/login',
      headers: { cookie: sessionCookieOf(form)!, 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html' },
      payload: new URLSearchParams({ _csrf: csrfTokenIn(form.body), username: 'boss', password: 'boss-password' }).toString(),
    })
    expect(attempt.statusCode).toBe(503)
    expect(attempt.body).toContain('signing in is not possible')
    expect(attempt.headers['set-cookie']).toBeUndefined()
    // Basic credentials are not looked at: the copy serves everyone as a visitor, and a page
    // that needs someone signed in says why that cannot be here (not "sign in first").
    expect((await standby.inject({ url: '/api/docs/replicated', headers: { authorization: BOSS } })).statusCode).toBe(200)
    for (const url of ['/manage', '/manage/users', '/docs/new']) {
      const page = await standby.inject({ url, headers: { authorization: BOSS, accept: 'text/html' } })
      expect(page.statusCode, url).toBe(503)
      expect(page.body, url).toContain('signing in is not possible')
    }
    expect((await standby.inject({ url: '/api/instances', headers: { authorization: BOSS } })).statusCode).toBe(401)
  })

  it('shows the replicated maintenance state, polled (NOTIFY does not cross replication)', async () => {
    const switched = await switchTo(primary, BOSS, 'concurrent', { reason: 'reindex' })
    const started = Date.now()
    await until('the standby instance applied the switch', async () => (await readState(standby)).version === switched.version || undefined, 10_000)
    expect(Date.now() - started).toBeLessThan(3000)
    expect(await readState(standby)).toMatchObject({ mode: 'concurrent', reason: 'reindex' })
    expect((await standby.inject({ url: '/docs/replicated' })).headers['quiesce-mode']).toBe('concurrent')
    await switchTo(primary, BOSS, 'normal')
    await until('the standby instance applied normal', async () => (await readState(standby)).mode === 'normal' || undefined, 10_000)
  })

  it('is listed in the primary\'s control panel as a standby, with the version it applied', async () => {
    const switched = await switchTo(primary, BOSS, 'concurrent', { reason: 'listed' })
    const standbyRow = async () => {
      const listed = await primary.inject({ url: '/api/instances', headers: { authorization: BOSS } })
      expect(listed.statusCode).toBe(200)
      const instances = listed.json<{ instances: Array<{ id: string, stateVersion: number, applied: boolean, stale: boolean, details: { database: { role: string, label: string } } }> }>().instances
      return instances.find((instance) => instance.id === 'on-standby')
    }
    const row = await until('the standby instance heartbeat the replicated version into the primary', async () => {
      const found = await standbyRow()
      return found?.stateVersion === switched.version ? found : undefined
    }, 10_000)
    expect(row).toMatchObject({ applied: true, stale: false, details: { database: { role: 'standby', label: 'PostgreSQL standby (a read-only copy)' } } })
    const panel = await primary.inject({ url: '/manage', headers: { authorization: BOSS, accept: 'text/html' } })
    expect(panel.body).toContain('on-standby')
    expect(panel.body).toContain('PostgreSQL standby (a read-only copy)')
    await switchTo(primary, BOSS, 'normal')
  })

  it('serves on while the primary is down (its registry there is only where it is listed), and is listed again after', async () => {
    await primaryServer.stop()
    const stoppedAt = new Date().toISOString()
    try {
      // Two heartbeats (2 s apart) fail to reach the primary's registry; the copy stays healthy.
      await new Promise((resolve) => setTimeout(resolve, 4500))
      expect((await standby.inject({ url: '/healthz' })).json()).toMatchObject({ status: 'replica' })
      const page = await standby.inject({ url: '/docs/replicated' })
      expect(page.statusCode).toBe(200)
      expect(page.body).toContain('written on the primary, read on the copy')
    } finally {
      await primaryServer.start()
    }
    await until('the standby instance is listed again', async () => (await primaryServer.query(`select id from maintenance_instance where id = 'on-standby' and heartbeat_at > '${stoppedAt}'`)).length === 1 || undefined, 15_000)
  }, 30_000)

  it('serves normally once its standby is promoted, without a restart', async () => {
    await standbyServer.promote()
    await until('the instance noticed the promotion', async () => (await standby.inject({ url: '/healthz' })).json().status === 'ok' || undefined, 10_000)
    expect(standbyDb.standby).toBe(false)
    const saved = await standby.inject({ method: 'PUT', url: '/api/docs/after-promotion', headers: { authorization: BOSS }, payload: { title: 'After', body: 'saved on the promoted copy' } })
    expect(saved.statusCode, saved.body).toBe(201)
    expect(await standbyServer.query("select title from document where slug = 'after-promotion'")).toEqual([{ title: 'After' }])
    const page = await standby.inject({ url: '/login' })
    expect(page.body).toContain('name="password"')
    expect(page.body).not.toContain('read-only copy')
    expect(page.headers['quiesce-replica']).toBeUndefined()
    // It registers itself in its own database and heartbeats like any instance, and leaves the
    // former primary's registry (the row there replicated here too, so wait for a fresh beat).
    const promotedAt = new Date().toISOString()
    await until('the promoted instance registered', async () => (await standbyServer.query(`select id from maintenance_instance where id = 'on-standby' and heartbeat_at > '${promotedAt}'`)).length === 1 || undefined, 10_000)
    expect(await standbyServer.query("select details::json->'database'->>'role' as role from maintenance_instance where id = 'on-standby'")).toEqual([{ role: 'primary' }])
    await until('the former primary no longer lists it', async () => (await primaryServer.query("select id from maintenance_instance where id = 'on-standby'")).length === 0 || undefined, 10_000)
  })
})

describe('a standby whose schema is older than this version', () => {
  it('is refused at start with what to do', async () => {
    const primaryServer = await PostgresServer.create()
    try {
      const standbyServer = await primaryServer.createStandby()
      try {
        await expect(openDatabase({ kind: 'postgres', url: standbyServer.url() })).rejects.toThrow(/hot standby whose schema is older than this version of Quiesce .*start this version on the primary first/)
      } finally {
        await standbyServer.destroy()
      }
    } finally {
      await primaryServer.destroy()
    }
  }, 120_000)
})
