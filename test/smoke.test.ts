import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { postForm, startTestSite, type TestSite } from './helpers/app.js'
import { DATABASE_KINDS } from './helpers/databases.js'
import { addPrincipals, signedInBrowser } from './helpers/principals.js'

describe.each(DATABASE_KINDS)('smoke on %s', (kind) => {
  let site: TestSite
  beforeAll(async () => { site = await startTestSite(kind) })
  afterAll(async () => { await site.close() })

  it('creates a document through the form and finds it', async () => {
    await addPrincipals(site, ['member'])
    const browser = await signedInBrowser(site.app, 'member')
    const res = await postForm(site.app, browser, '/docs', { title: 'Walnut shelf', body: 'A *walnut* shelf.' })
    expect(res.statusCode).toBe(303)
    expect(res.headers.location).toBe('/docs/walnut-shelf?saved=1')
    const page = await site.app.inject('/docs/walnut-shelf')
    expect(page.body).toContain('<em>walnut</em>')
    const search = await site.app.inject('/api/search?q=walnut')
    expect(search.json().hits.map((h: { slug: string }) => h.slug)).toEqual(['walnut-shelf'])
  })
})
