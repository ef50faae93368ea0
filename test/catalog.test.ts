import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { searchTerms } from '../app/content/catalog.js'
import { seedDocuments } from '../app/content/seed.js'
import { addUser, basicAuth, documentRow, mainOf, postForm, startTestSite, type Browser, type TestSite } from './helpers/app.js'
import { DATABASE_KINDS } from './helpers/databases.js'
import { addPrincipals, signedInBrowser } from './helpers/principals.js'

interface Hit { slug: string, title: string, snippet: string, score: number }

describe('searchTerms', () => {
  it('takes the lower-cased words of letters and digits, at most 12', () => {
    expect(searchTerms('  Brass HINGE, 40mm!  ')).toEqual(['brass', 'hinge', '40mm'])
    expect(searchTerms('Ölkännchen über')).toEqual(['ölkännchen', 'über'])
    expect(searchTerms('"quoted" OR NOT -x* (y)')).toEqual(['quoted', 'or', 'not', 'x', 'y'])
    expect(searchTerms('!!! ... ---')).toEqual([])
    expect(searchTerms('a b c d e f g h i j k l m n')).toHaveLength(12)
  })
})

describe.each(DATABASE_KINDS)('the catalog on %s', (kind) => {
  let site: TestSite
  let bob: string
  let ann: Browser

  beforeAll(async () => {
    site = await startTestSite(kind)
    bob = basicAuth('bob', await addUser(site.database, 'bob', 'member'))
    await addPrincipals(site, ['member'])
    ann = await signedInBrowser(site.app, 'member')
  })
  afterAll(async () => { await site.close() })

  async function putDoc (slug: string, payload: Record<string, unknown>) {
    return site.app.inject({ method: 'PUT', url: `/api/docs/${slug}`, headers: { authorization: bob }, payload })
  }

  async function createDoc (slug: string, title: string, body: string) {
    const response = await putDoc(slug, { title, body })
    expect(response.statusCode).toBe(201)
  }

  async function search (query: string, limit?: number): Promise<Hit[]> {
    const params = new URLSearchParams({ q: query })
    if (limit !== undefined) params.set('limit', String(limit))
    const response = await site.app.inject(`/api/search?${params.toString()}`)
    expect(response.statusCode).toBe(200)
    return response.json().hits
  }

  async function slugsFor (query: string): Promise<string[]> {
    return (await search(query)).map((hit) => hit.slug)
  }

  /** The catalog's entry for a document, read straight from the table. */
  async function catalogEntry (slug: string): Promise<{ slug: string, title: string, body: string } | undefined> {
    const doc = await documentRow(site.database, slug)
    const id = doc?.id ?? -1
    const { rows } = kind === 'sqlite'
      ? await sql<{ slug: string, title: string, body: string }>`select slug, title, body from catalog where rowid = ${id}`.execute(site.database.writer)
      : await sql<{ slug: string, title: string, body: string }>`select slug, title, body from catalog where document_id = ${id}`.execute(site.database.writer)
    return rows[0]
  }

  async function catalogEntriesFor (slug: string): Promise<number> {
    const { rows } = await sql<{ n: string | number }>`select count(*) as n from catalog where slug = ${slug}`.execute(site.database.writer)
    return Number(rows[0]!.n)
  }

  it('finds a document by a word of its title and by a word of its body', async () => {
    await createDoc('find-title-body', 'Aardvarkian cabinet latch', 'Fits a narrow bilberrywood door.')
    expect(await slugsFor('aardvarkian')).toEqual(['find-title-body'])
    expect(await slugsFor('bilberrywood')).toEqual(['find-title-body'])
    expect(await slugsFor('AARDVARKIAN Bilberrywood')).toEqual(['find-title-body'])
  })

  it('needs every word to match, and treats only the last word as a prefix', async () => {
    await createDoc('prefix-lamp', 'Quincewood lamp base', 'A lamp base in quincewood.')
    await createDoc('prefix-other', 'Quincewood drawer pull', 'No light here.')
    expect(await slugsFor('quincew')).toEqual(expect.arrayContaining(['prefix-lamp', 'prefix-other']))
    expect(await slugsFor('quincew')).toHaveLength(2)
    expect(await slugsFor('lamp quincew')).toEqual(['prefix-lamp'])
    expect(await slugsFor('quincew lamp')).toEqual([])
    expect(await slugsFor('quincewood lam')).toEqual(['prefix-lamp'])
  })

  it('ranks a title match above a body-only match', async () => {
    await createDoc('rank-body', 'Plain shelf bracket', 'This bracket goes well with a zorbulite knob, and nothing else.')
    await createDoc('rank-title', 'Zorbulite knob', 'A round knob.')
    const hits = await search('zorbulite')
    expect(hits.map((hit) => hit.slug)).toEqual(['rank-title', 'rank-body'])
    expect(hits[0]!.score).toBeGreaterThan(hits[1]!.score)
    for (const hit of hits) expect(typeof hit.score).toBe('number')
  })

  it('marks the matches in the snippet and escapes the text around them', async () => {
    await createDoc('snippet-escape', 'Snippet escape', 'The <quokkaish> & friends say "hello".')
    const [hit] = await search('quokkaish')
    expect(hit).toBeDefined()
    expect(hit!.slug).toBe('snippet-escape')
    expect(hit!.snippet).toContain('<mark>quokkaish</mark>&gt; &amp; friends say “hello')
    expect(hit!.snippet.replace(/<\/?mark>/g, '')).not.toMatch(/[<>]/)
  })

  it('finds words that look like HTML tags in the text', async () => {
    await createDoc('tag-words', 'Using the element well', 'Wrap the answer in a <detailsish> element; a<b and c>d compares.')
    expect(await slugsFor('detailsish')).toEqual(['tag-words'])
    expect(await slugsFor('compares')).toEqual(['tag-words'])
  })

  it('indexes the text of the Markdown, not its markup or link targets', async () => {
    await createDoc('markup-words', 'Markup words', '**Strongtext** and [linkwords](https://example.com/hiddenpathword) and `codewordish`')
    const [hit] = await search('strongtext')
    expect(hit!.slug).toBe('markup-words')
    expect(hit!.snippet).toBe('<mark>Strongtext</mark> and linkwords and codewordish')
    expect(await slugsFor('linkwords')).toEqual(['markup-words'])
    expect(await slugsFor('codewordish')).toEqual(['markup-words'])
    expect(await slugsFor('hiddenpathword')).toEqual([])
    expect(await slugsFor('https')).not.toContain('markup-words')
  })

  it.each(['', '   ', '!!!', '*', '"" -- ()', ':*&|'])('the query %j finds nothing', async (query) => {
    expect(await search(query)).toEqual([])
  })

  it('an edit updates the catalog in the same commit: the old word is gone, the new one found', async () => {
    await createDoc('edit-catalog', 'Gribbleton hook', 'Made of wompleberry.')
    expect(await slugsFor('wompleberry')).toEqual(['edit-catalog'])

    const response = await putDoc('edit-catalog', { title: 'Frobisher hook', body: 'Made of snarkelwood.', expectedVersion: 1 })
    expect(response.statusCode).toBe(200)
    expect(await catalogEntry('edit-catalog')).toEqual({ slug: 'edit-catalog', title: 'Frobisher hook', body: 'Made of snarkelwood.' })
    expect(await catalogEntriesFor('edit-catalog')).toBe(1)
    expect(await slugsFor('wompleberry')).toEqual([])
    expect(await slugsFor('gribbleton')).toEqual([])
    expect(await slugsFor('snarkelwood')).toEqual(['edit-catalog'])
    expect(await slugsFor('frobisher')).toEqual(['edit-catalog'])
  })

  it('an edit through the form updates the catalog too', async () => {
    await createDoc('form-edit-catalog', 'Form edit', 'Before: plimsollite.')
    const response = await postForm(site.app, ann, '/docs/form-edit-catalog', { title: 'Form edit', body: 'After: quaggamire.', version: '1' })
    expect(response.statusCode).toBe(303)
    expect(await slugsFor('plimsollite')).toEqual([])
    expect(await slugsFor('quaggamire')).toEqual(['form-edit-catalog'])
  })

  it('a create through the form indexes the new document', async () => {
    const response = await postForm(site.app, ann, '/docs', { title: 'Form create', slug: 'form-create-catalog', body: 'Made of tumbleweedish.' })
    expect(response.statusCode).toBe(303)
    expect(await catalogEntry('form-create-catalog')).toEqual({ slug: 'form-create-catalog', title: 'Form create', body: 'Made of tumbleweedish.' })
    expect(await slugsFor('tumbleweedish')).toEqual(['form-create-catalog'])
  })

  it('a refused edit (stale version) leaves the catalog as it was', async () => {
    await createDoc('refused-catalog', 'Refused', 'Keeps fizzlewick.')
    await putDoc('refused-catalog', { title: 'Refused', body: 'Now fizzlewick and more.' })
    const response = await putDoc('refused-catalog', { title: 'Refused', body: 'Would be dropwort.', expectedVersion: 1 })
    expect(response.statusCode).toBe(409)
    expect(await catalogEntry('refused-catalog')).toEqual({ slug: 'refused-catalog', title: 'Refused', body: 'Now fizzlewick and more.' })
    expect(await slugsFor('dropwort')).toEqual([])
  })

  it('deleting a document removes it from the catalog', async () => {
    await createDoc('delete-catalog', 'Delete me', 'Contains vanishium.')
    expect(await slugsFor('vanishium')).toEqual(['delete-catalog'])
    const response = await site.app.inject({ method: 'DELETE', url: '/api/docs/delete-catalog', headers: { authorization: bob } })
    expect(response.statusCode).toBe(204)
    expect(await catalogEntriesFor('delete-catalog')).toBe(0)
    expect(await slugsFor('vanishium')).toEqual([])
  })

  it('GET /api/search is {total, limit, offset, hits: [{slug, title, snippet, score}]}, best first, and respects limit', async () => {
    await createDoc('limit-one', 'Limitberry one', 'limitberry limitberry limitberry')
    await createDoc('limit-two', 'Limitberry two', 'limitberry')
    await createDoc('limit-three', 'Third', 'limitberry')
    const response = await site.app.inject('/api/search?q=limitberry&limit=2')
    expect(response.statusCode).toBe(200)
    expect(response.headers['content-type']).toBe('application/json; charset=utf-8')
    const body = response.json()
    expect(Object.keys(body)).toEqual(['total', 'limit', 'offset', 'hits'])
    expect(body).toMatchObject({ total: 3, limit: 2, offset: 0 })
    expect(body.hits).toHaveLength(2)
    for (const hit of body.hits) {
      expect(Object.keys(hit).sort()).toEqual(['score', 'slug', 'snippet', 'title'])
    }
    const all = await search('limitberry')
    expect(all).toHaveLength(3)
    expect(body.hits).toEqual(all.slice(0, 2))
    expect(all[2]!.slug).toBe('limit-three')
    const scores = all.map((hit) => hit.score)
    expect([...scores].sort((a, b) => b - a)).toEqual(scores)
    expect(all.find((hit) => hit.slug === 'limit-two')).toMatchObject({ title: 'Limitberry two', snippet: '<mark>limitberry</mark>' })
  })

  it.each([
    ['', 'querystring must have required property \'q\''],
    ['?q=x&limit=0', undefined],
    ['?q=x&limit=101', undefined],
    ['?q=x&offset=-1', undefined],
    ['?q=x&offset=abc', undefined],
    [`?q=${'x'.repeat(501)}`, undefined],
  ])('GET /api/search%s is 400 QUIESCE_INVALID_INPUT', async (query, message) => {
    const response = await site.app.inject(`/api/search${query}`)
    expect(response.statusCode).toBe(400)
    const body = response.json()
    expect(body).toMatchObject({ statusCode: 400, code: 'QUIESCE_INVALID_INPUT', error: 'Bad Request' })
    if (message !== undefined) expect(body.message).toBe(message)
  })

  it('the /search page lists the hits with links and snippets', async () => {
    await createDoc('page-hit-a', 'Pagewidget alpha', 'The first pagewidget.')
    await createDoc('page-hit-b', 'Second', 'Another pagewidget here.')
    const response = await site.app.inject('/search?q=pagewidget')
    expect(response.statusCode).toBe(200)
    expect(response.headers['content-type']).toBe('text/html; charset=utf-8')
    const main = mainOf(response.body)
    expect(response.body).toContain('<title>Search: pagewidget · Quiesce</title>')
    expect(main).toContain('<input id="search-q" type="search" name="q" value="pagewidget" autofocus>')
    expect(main).toContain('<p class="meta" role="status">2 documents match “pagewidget”.</p>')
    const links = [...main.matchAll(/<a href="\/docs\/([^"]+)">([^<]*)<\/a>/g)].map((match) => [match[1], match[2]])
    expect(links).toEqual([['page-hit-a', 'Pagewidget alpha'], ['page-hit-b', 'Second']])
    expect(main).toContain('<p class="snippet">Another <mark>pagewidget</mark> here')
  })

  it('the /search page says when one or no documents match, and shows no list for an empty query', async () => {
    await createDoc('page-single', 'Singlewidget', 'Only one.')
    expect(mainOf((await site.app.inject('/search?q=singlewidget')).body)).toContain('<p class="meta" role="status">1 document matches “singlewidget”.</p>')
    expect(mainOf((await site.app.inject('/search?q=nothingmatchesthis')).body)).toContain('<p class="meta" role="status">No documents match “nothingmatchesthis”.</p>')
    const punctuation = await site.app.inject('/search?q=%21%21%21')
    expect(punctuation.statusCode).toBe(200)
    expect(mainOf(punctuation.body)).toContain('No documents match “!!!”.')
    const empty = await site.app.inject('/search?q=%20%20')
    expect(empty.statusCode).toBe(200)
    expect(empty.body).toContain('<title>Search · Quiesce</title>')
    expect(mainOf(empty.body)).not.toContain('role="status"')
    expect(mainOf(empty.body)).not.toContain('<ol class="hits">')
  })

  it('seeded documents are indexed, and the catalog has exactly one entry per document', async () => {
    const added = await seedDocuments(site.database.writer, site.app.catalog, 30)
    expect(added).toBe(30)
    const { rows: [catalog] } = await sql<{ n: string | number }>`select count(*) as n from catalog`.execute(site.database.writer)
    const { rows: [documents] } = await sql<{ n: string | number }>`select count(*) as n from document`.execute(site.database.writer)
    expect(Number(catalog!.n)).toBe(Number(documents!.n))
    const hits = await search('catalog entry', 100)
    expect(hits.length).toBeGreaterThanOrEqual(30)
  })

  it('seeding skips a generated document whose slug is taken, and indexes the others once', async () => {
    await createDoc('seed-gap', 'Seed gap', 'gone soon')
    expect(await seedDocuments(site.database.writer, site.app.catalog, 2)).toBe(2)
    // One document fewer: the next seed numbers from the last generated one again, whose slug is taken.
    expect((await site.app.inject({ method: 'DELETE', url: '/api/docs/seed-gap', headers: { authorization: bob } })).statusCode).toBe(204)
    const { rows: [last] } = await sql<{ slug: string }>`select slug from document order by id desc limit 1`.execute(site.database.writer)
    expect(await seedDocuments(site.database.writer, site.app.catalog, 1)).toBe(0)
    expect(await seedDocuments(site.database.writer, site.app.catalog, 3)).toBe(2)
    expect(await catalogEntriesFor(last!.slug)).toBe(1)
    const { rows: [catalog] } = await sql<{ n: string | number }>`select count(*) as n from catalog`.execute(site.database.writer)
    const { rows: [documents] } = await sql<{ n: string | number }>`select count(*) as n from document`.execute(site.database.writer)
    expect(Number(catalog!.n)).toBe(Number(documents!.n))
  })

  describe('more hits than a page', () => {
    const COUNT = 45
    let expected: Hit[]

    beforeAll(async () => {
      for (let i = 1; i <= COUNT; i++) {
        // Different weights, so the ranking is the same on every run and both databases agree on it.
        await createDoc(`pagingberry-${String(i).padStart(2, '0')}`, `Pagingberry ${i}`, `pagingberry ${'filler '.repeat(i)}`)
      }
      expected = await search('pagingberry', 100)
      expect(expected).toHaveLength(COUNT)
    })

    it('GET /api/search pages with limit and offset and says how many match in all', async () => {
      const pages: Hit[] = []
      for (let offset = 0; offset < COUNT + 10; offset += 20) {
        const response = await site.app.inject(`/api/search?q=pagingberry&limit=20&offset=${offset}`)
        expect(response.statusCode).toBe(200)
        const body = response.json()
        expect(body).toMatchObject({ total: COUNT, limit: 20, offset })
        expect(body.hits).toHaveLength(Math.max(0, Math.min(20, COUNT - offset)))
        pages.push(...body.hits)
      }
      expect(pages).toEqual(expected)
      expect((await site.app.inject('/api/search?q=nothingmatchesthisberry')).json()).toEqual({ total: 0, limit: 20, offset: 0, hits: [] })
    })

    it('the /search page shows 20 hits a page, numbered on, with links to the other pages', async () => {
      const first = mainOf((await site.app.inject('/search?q=pagingberry')).body)
      expect(first).toContain('<p class="meta" role="status">45 documents match “pagingberry”. Showing 1–20, best first.</p>')
      expect(first).toContain('<ol class="hits">')
      expect(first).toContain('<nav class="pager" aria-label="Pages of results">')
      expect(first).toContain('<span>Page 1 of 3</span>')
      expect(first).toContain('<a rel="next" href="/search?q=pagingberry&amp;page=2">Next →</a>')
      expect(first).not.toContain('rel="prev"')
      const slugsOn = (main: string) => [...main.matchAll(/<a href="\/docs\/(pagingberry-\d+)">/g)].map((match) => match[1])
      expect(slugsOn(first)).toEqual(expected.slice(0, 20).map((hit) => hit.slug))

      const third = site.app.inject('/search?q=pagingberry&page=3')
      const last = mainOf((await third).body)
      expect(last).toContain('45 documents match “pagingberry”. Showing 41–45, best first.')
      expect(last).toContain('<ol class="hits" start="41">')
      expect([...last.matchAll(/<span class="hit-number" aria-hidden="true">([\d,]+)\.<\/span>/g)].map((match) => match[1])).toEqual(['41', '42', '43', '44', '45'])
      expect(last).toContain('<a rel="prev" href="/search?q=pagingberry&amp;page=2">← Previous</a>')
      expect(last).not.toContain('rel="next"')
      expect(slugsOn(last)).toEqual(expected.slice(40).map((hit) => hit.slug))
      expect((await third).body).toContain('<title>Search: pagingberry (page 3) · Quiesce</title>')

      // A page past the end shows the last one; nonsense shows the first.
      expect(slugsOn(mainOf((await site.app.inject('/search?q=pagingberry&page=99')).body))).toEqual(slugsOn(last))
      expect(slugsOn(mainOf((await site.app.inject('/search?q=pagingberry&page=x')).body))).toEqual(slugsOn(first))
    })
  })

  it('a snippet keeps a heading apart from the text after it', async () => {
    await createDoc('heading-apart', 'Heading apart', 'Intro line.\n\n## Specification\n\n- **Material:** separatium oak\n- **Size:** 40 mm')
    const [hit] = await search('separatium')
    expect(hit!.slug).toBe('heading-apart')
    expect(hit!.snippet).toContain('Specification · Material: <mark>separatium</mark> oak · Size')
    expect((await catalogEntry('heading-apart'))!.body).toBe('Intro line. · Specification · Material: separatium oak · Size: 40 mm')
  })
})
