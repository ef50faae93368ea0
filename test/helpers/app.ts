import path from 'node:path'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { buildApp } from '../../app/app.js'
import { hashPassword } from '../../app/auth/passwords.js'
import { insertUser } from '../../app/auth/users.js'
import type { Config } from '../../app/config.js'
import { openDatabase, type Database } from '../../app/db/database.js'
import type { Role } from '../../app/db/schema.js'
import type { TaskRunnerOptions } from '../../app/tasks/runner.js'
import { createTestDatabase, type DatabaseKind, type TestDatabase } from './databases.js'

export interface TestSite {
  app: FastifyInstance
  database: Database
  config: Config
  testDatabase: TestDatabase
  close (): Promise<void>
}

export function testConfig (testDatabase: TestDatabase, overrides: Partial<Config> = {}): Config {
  return {
    host: '127.0.0.1',
    port: 0,
    dataDir: testDatabase.dataDir,
    database: testDatabase.url,
    replicas: { urls: [], maxLagMs: 2000 },
    sessionSecret: 'a test secret that is at least thirty-two characters long',
    accessFile: path.join(testDatabase.dataDir, 'access'),
    instanceId: 'test-instance',
    retryAttempts: 3,
    retryAfterSeconds: 300,
    logLevel: 'silent',
    primaryOrigin: null,
    primaryDatabaseUrl: null,
    ...overrides,
  }
}

/**
 * A whole site on a fresh database of `kind`; `configure` may add test-only routes before ready;
 * `tasks` shortens the task runner's timings.
 */
export async function startTestSite (kind: DatabaseKind, options: { config?: Partial<Config>, configure?: (app: FastifyInstance) => void | Promise<void>, tasks?: TaskRunnerOptions } = {}): Promise<TestSite> {
  const testDatabase = await createTestDatabase(kind)
  const config = testConfig(testDatabase, options.config)
  const database = await openDatabase(config.database)
  const app = await buildApp({ config, database, tasks: options.tasks })
  await options.configure?.(app)
  await app.ready()
  return {
    app,
    database,
    config,
    testDatabase,
    async close () {
      await app.close()
      await testDatabase.drop()
    },
  }
}

export async function addUser (database: Database, username: string, role: Role, password = `${username}-password`): Promise<string> {
  await insertUser(database.writer, { username, passwordHash: await hashPassword(password), role })
  return password
}

/** A signed-in browser: its session cookie, and a CSRF token for its forms and API calls. */
export interface Browser {
  cookie: string
  csrf: string
}

export function sessionCookieOf (response: LightMyRequestResponse): string | undefined {
  const cookie = response.cookies.find((c) => c.name === 'quiesce.sid')
  return cookie && `quiesce.sid=${cookie.value}`
}

export function csrfTokenIn (html: string): string {
  const match = /name="_csrf" value="([^"]+)"/.exec(html)
  if (match === null) throw new Error('no CSRF token on the page')
  return match[1]!
}

/** Signs in through the login form, as a person would, and picks up a CSRF token. */
export async function signIn (app: FastifyInstance, username: string, password: string): Promise<Browser> {
  const loginPage = await app.inject({ url: '/login' })
  const anonymousCookie = sessionCookieOf(loginPage)!
  const response = await app.inject({
    method: 'POST',
    url: '/login',
    headers: { cookie: anonymousCookie },
    payload: { username, password, _csrf: csrfTokenIn(loginPage.body) },
  })
  if (response.statusCode !== 303) throw new Error(`sign-in as ${username} failed: ${response.statusCode} ${response.body.slice(0, 200)}`)
  const cookie = sessionCookieOf(response)!
  const page = await app.inject({ url: '/docs/new', headers: { cookie } })
  return { cookie: sessionCookieOf(page) ?? cookie, csrf: csrfTokenIn(page.body) }
}

export function basicAuth (username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`
}

/** A urlencoded form post from a signed-in browser. */
export async function postForm (app: FastifyInstance, browser: Browser, url: string, fields: Record<string, string>) {
  return app.inject({
    method: 'POST',
    url,
    headers: { cookie: browser.cookie, 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ _csrf: browser.csrf, ...fields }).toString(),
  })
}

/** The page's own content (inside `<main>`), without the layout's header, nav and footer. */
export function mainOf (html: string): string {
  const start = html.indexOf('<main')
  const end = html.indexOf('</main>')
  if (start === -1 || end === -1) throw new Error(`not a page: ${html.slice(0, 200)}`)
  return html.slice(start, end)
}

/** The stored `document` row, as the database has it after commit. */
export async function documentRow (database: Database, slug: string) {
  return database.writer.selectFrom('document').selectAll().where('slug', '=', slug).executeTakeFirst()
}
