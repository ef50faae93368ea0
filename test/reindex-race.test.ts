import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../app/app.js'
import type { Catalog } from '../app/content/catalog.js'
import { seedDocuments } from '../app/content/seed.js'
import { openDatabase } from '../app/db/database.js'
import { startTestSite, testConfig, type TestSite } from './helpers/app.js'
import { DATABASE_KINDS } from './helpers/databases.js'
import { addPrincipals, basicOf } from './helpers/principals.js'
import { FINISHED, until } from './helpers/tasks.js'

const BOSS = basicOf('maintainer')
const ANN = basicOf('member')

/**
 * An edit that commits while a reindex batch is between its version check and its catalog
 * writes must not have its fresh catalog entry overwritten with the text the batch read.
 */
describe.each(DATABASE_KINDS)('a reindex racing an edit on %s', (kind) => {
  let site: TestSite
  let editor: FastifyInstance
  let raced: Promise<number> | undefined

  beforeAll(async () => {
    site = await startTestSite(kind, { tasks: { pollMs: 50, heartbeatMs: 200 } })
    const config = testConfig(site.testDatabase, { instanceId: 'editor' })
    editor = await buildApp({ config, database: await openDatabase(config.database) })
    await editor.ready()
    await addPrincipals(site, ['maintainer', 'member'])
    await seedDocuments(site.database.writer, site.app.catalog, 150)
    // Between the check and the writes of the first batch, another instance edits document 7.
    const catalog = site.app.catalog as Catalog
    const removeRange = catalog.removeRange.bind(catalog)
    catalog.removeRange = async (db, from, to) => {
      if (raced === undefined && from === 1) {
        const slug = (await db.selectFrom('document').select('slug').where('id', '=', 7).executeTakeFirstOrThrow()).slug
        raced = editor.inject({ method: 'PUT', url: `/api/docs/${slug}`, headers: { authorization: ANN }, payload: { title: 'Edited during the reindex', body: 'fresh text' } })
          .then((res) => res.statusCode)
        // Give the edit every chance to commit inside the window, unless it has to wait for the batch.
        await Promise.race([raced, new Promise((resolve) => setTimeout(resolve, 300))])
      }
      return removeRange(db, from, to)
    }
  })
  afterAll(async () => {
    await editor.close()
    await site.close()
  })

  it('leaves the edited document findable by its new title', async () => {
    const id = (await site.app.inject({ method: 'POST', url: '/api/tasks/reindex', headers: { authorization: BOSS } })).json().id
    const task = await until('the reindex to end', async () => {
      const current = (await site.app.inject({ url: `/api/tasks/${id}`, headers: { authorization: BOSS } })).json()
      return FINISHED.includes(current.state) ? current : undefined
    })
    expect(task.state).toBe('done')
    expect(await raced).toBe(200)
    const hits = (await site.app.inject('/api/search?q=edited%20during%20the%20reindex')).json().hits
    expect(hits.map((hit: { title: string }) => hit.title)).toEqual(['Edited during the reindex'])
  })
})
