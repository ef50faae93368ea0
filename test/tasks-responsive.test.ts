import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { seedDocuments } from '../app/content/seed.js'
import { startTestSite, type TestSite } from './helpers/app.js'
import { DATABASE_KINDS } from './helpers/databases.js'
import { addPrincipals, basicOf } from './helpers/principals.js'

const BOSS = basicOf('maintainer')

/** SQLite answers synchronously: a long task must still leave its instance turns to answer others. */
describe.each(DATABASE_KINDS)('an instance running a long task on %s', (kind) => {
  let site: TestSite

  beforeAll(async () => {
    site = await startTestSite(kind)
    await addPrincipals(site, ['maintainer'])
    await seedDocuments(site.database.writer, site.app.catalog, 3000)
  })
  afterAll(async () => { await site.close() })

  it('answers requests while a reindex runs, not only when it is done', async () => {
    const started = await site.app.inject({ method: 'POST', url: '/api/tasks/reindex', headers: { authorization: BOSS } })
    expect(started.statusCode).toBe(202)
    const id = started.json().id as number
    const seen: Array<{ state: string, done: number }> = []
    for (;;) {
      const res = await site.app.inject({ url: `/api/tasks/${id}`, headers: { authorization: BOSS } })
      const task = res.json()
      seen.push({ state: task.state, done: task.done })
      if (task.state === 'done') break
      expect(['queued', 'running']).toContain(task.state)
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    // The instance answered while the rebuild was under way, with progress in between.
    expect(seen.some((s) => s.state === 'running' && s.done > 0 && s.done < 3000)).toBe(true)
    expect(seen.at(-1)).toEqual({ state: 'done', done: 3000 })
  })
})
