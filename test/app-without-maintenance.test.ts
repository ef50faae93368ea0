import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../app/app.js'
import { openDatabase } from '../app/db/database.js'
import type { FastifyInstance } from 'fastify'
import { testConfig } from './helpers/app.js'
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from './helpers/databases.js'
import { addPrincipals, basicOf } from './helpers/principals.js'

/** The baseline the benchmarks compare the maintenance plugin against. */
describe.each(DATABASE_KINDS)('the site built without maintenance mode on %s', (kind) => {
  let testDatabase: TestDatabase
  let app: FastifyInstance

  beforeAll(async () => {
    testDatabase = await createTestDatabase(kind)
    const config = testConfig(testDatabase)
    const database = await openDatabase(config.database)
    app = await buildApp({ config, database, maintenance: false })
    await app.ready()
    await addPrincipals({ database }, ['member'])
  })
  afterAll(async () => {
    await app.close()
    await testDatabase.drop()
  })

  it('serves and saves documents, with no gate, no banner and no control panel', async () => {
    const put = await app.inject({ method: 'PUT', url: '/api/docs/plain', headers: { authorization: basicOf('member') }, payload: { title: 'Plain', body: 'No maintenance here.' } })
    expect(put.statusCode).toBe(201)
    const page = await app.inject('/docs/plain')
    expect(page.statusCode).toBe(200)
    expect(page.body).toContain('No maintenance here.')
    expect(page.headers['quiesce-mode']).toBeUndefined()
    expect(page.body).toContain('id="maintenance-banner"')
    expect(page.body).toMatch(/id="maintenance-banner"[^>]* hidden>/)
    expect((await app.inject('/manage')).statusCode).toBe(404)
    expect((await app.inject('/api/maintenance')).statusCode).toBe(404)
    expect(app.hasDecorator('maintenance')).toBe(false)
  })
})
