import { readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import { afterAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../app/config.js'
import { DEMO_DOCUMENTS } from '../app/content/seed.js'
import { serve } from '../app/server.js'
import { basicAuth, csrfTokenIn, mainOf, sessionCookieOf, signIn } from './helpers/app.js'
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from './helpers/databases.js'

describe.each(DATABASE_KINDS)('the first start of a new site on %s', (kind) => {
  const databases: TestDatabase[] = []
  const running: FastifyInstance[] = []

  afterAll(async () => {
    for (const app of running.splice(0)) await app.close()
    for (const database of databases.splice(0)) await database.drop()
  })

  /** A fresh, empty database and data dir: a site that has never started. */
  async function newSite (): Promise<TestDatabase> {
    const database = await createTestDatabase(kind)
    databases.push(database)
    return database
  }

  function environment (site: TestDatabase): NodeJS.ProcessEnv {
    return {
      QUIESCE_DATA_DIR: site.dataDir,
      ...(site.url.kind === 'postgres' ? { QUIESCE_DATABASE_URL: site.url.url } : {}),
      PORT: '0',
      QUIESCE_LOG_LEVEL: 'silent',
      QUIESCE_INSTANCE_ID: `first-start-${kind}`,
    }
  }

  /** Starts the site as `quiesce serve` does, capturing what it prints. */
  async function start (site: TestDatabase) {
    const printed: string[] = []
    const app = await serve(loadConfig(environment(site)), { print: (line) => printed.push(line) })
    running.push(app)
    return { app, output: printed.join('\n') }
  }

  async function stop (app: FastifyInstance) {
    running.splice(running.indexOf(app), 1)
    await app.close()
  }

  async function counts (app: FastifyInstance) {
    const db = app.db.writer
    const number = async (query: ReturnType<typeof sql<{ n: string | number }>>) => Number((await query.execute(db)).rows[0]!.n)
    return {
      documents: await number(sql`select count(*) as n from document`),
      catalog: await number(sql`select count(*) as n from catalog`),
      users: await number(sql`select count(*) as n from app_user`),
    }
  }

  async function users (app: FastifyInstance) {
    return app.db.writer.selectFrom('app_user').select(['username', 'role', 'password_hash', 'version']).execute()
  }

  function printedPassword (output: string): string {
    const password = /^ {4}password: {2}(\S+)$/m.exec(output)?.[1]
    if (password === undefined) throw new Error(`no password in: ${output}`)
    return password
  }

  it('seeds 200 demo documents, creates the manager admin and prints the password once; it signs in', async () => {
    const site = await newSite()
    const { app, output } = await start(site)
    const address = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`

    const password = printedPassword(output)
    expect(password.length).toBeGreaterThanOrEqual(16)
    expect(output).toMatch(/^ {4}user: {6}admin$/m)
    expect(output).toContain('the password is shown only this once')
    expect(output).toContain(`Sign in at ${address}/login and change it with \`quiesce user passwd admin\`.`)
    expect(output.split(password)).toHaveLength(2)
    expect(output).toMatch(new RegExp(`Quiesce is serving ${address} \\(database: .+\\)$`))

    expect(DEMO_DOCUMENTS).toBe(200)
    expect(await counts(app)).toEqual({ documents: 200, catalog: 200, users: 1 })
    expect(await users(app)).toEqual([{ username: 'admin', role: 'manager', password_hash: expect.stringMatching(/^\$argon2id\$/), version: 1 }])
    const authors = await app.db.writer.selectFrom('document').select('created_by').distinct().execute()
    expect(authors).toEqual([{ created_by: 'quiesce' }])

    const secret = path.join(site.dataDir, 'session-secret')
    expect(statSync(secret).mode & 0o777).toBe(0o600)
    expect(readFileSync(secret, 'utf8').trim().length).toBeGreaterThanOrEqual(32)

    // It is really listening, with the demo content searchable.
    const home = await fetch(address)
    expect(home.status).toBe(200)
    expect(await home.text()).toContain('<p class="lead">200 documents.')
    const search = await fetch(`${address}/api/search?q=hinge&limit=5`)
    expect(((await search.json()) as { hits: unknown[] }).hits.length).toBeGreaterThan(0)

    const browser = await signIn(app, 'admin', password)
    const signedIn = await app.inject({ url: '/', headers: { cookie: browser.cookie } })
    expect(signedIn.body).toContain('<strong data-testid="signed-in-user">admin</strong><span class="role"> · manager</span>')
  })

  it('a second start on the same data keeps everything, creates nothing and prints no password', async () => {
    const site = await newSite()
    const first = await start(site)
    const password = printedPassword(first.output)
    const sessionCookie = (await signIn(first.app, 'admin', password)).cookie
    await first.app.inject({ method: 'PUT', url: '/api/docs/written-before-restart', headers: { authorization: basicAuth('admin', password) }, payload: { title: 'Before the restart', body: 'kept' } })
    const countsBefore = await counts(first.app)
    const usersBefore = await users(first.app)
    const documentsBefore = await first.app.db.writer.selectFrom('document').selectAll().orderBy('id').execute()
    const secretBefore = readFileSync(path.join(site.dataDir, 'session-secret'), 'utf8')
    await stop(first.app)

    const { app, output } = await start(site)
    expect(output).not.toContain('password')
    expect(output).not.toContain(password)
    expect(output).toMatch(/^Quiesce is serving http:\/\/127\.0\.0\.1:\d+ \(database: .+\)$/)
    expect(await counts(app)).toEqual(countsBefore)
    expect(countsBefore).toEqual({ documents: 201, catalog: 201, users: 1 })
    expect(await users(app)).toEqual(usersBefore)
    expect(await app.db.writer.selectFrom('document').selectAll().orderBy('id').execute()).toEqual(documentsBefore)
    expect(readFileSync(path.join(site.dataDir, 'session-secret'), 'utf8')).toBe(secretBefore)

    // The session from before the restart is still signed in, and the password still works.
    const signedIn = await app.inject({ url: '/docs/new', headers: { cookie: sessionCookie } })
    expect(signedIn.statusCode).toBe(200)
    expect(mainOf(signedIn.body)).toContain('<h1>New document</h1>')
    const page = await app.inject('/login')
    const response = await app.inject({
      method: 'POST',
      url: '/login',
      headers: { cookie: sessionCookieOf(page)!, 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ _csrf: csrfTokenIn(page.body), username: 'admin', password }).toString(),
    })
    expect(response.statusCode).toBe(303)
  })

  it('a site with content but no manager gets a new admin and keeps its documents, without new demo ones', async () => {
    const site = await newSite()
    const first = await start(site)
    await first.app.db.writer.deleteFrom('app_user').execute()
    const before = await counts(first.app)
    await stop(first.app)

    const { app, output } = await start(site)
    const password = printedPassword(output)
    expect(await counts(app)).toEqual({ ...before, users: 1 })
    expect(await users(app)).toEqual([{ username: 'admin', role: 'manager', password_hash: expect.stringMatching(/^\$argon2id\$/), version: 1 }])
    expect((await signIn(app, 'admin', password)).cookie).toMatch(/^quiesce\.sid=/)
  })
})
