import type { LightMyRequestResponse } from 'fastify'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { catalogFor } from '../app/content/catalog.js'
import { seedDocuments } from '../app/content/seed.js'
import { addUser, basicAuth, documentRow, mainOf, postForm, startTestSite, type Browser, type TestSite } from './helpers/app.js'
import { DATABASE_KINDS } from './helpers/databases.js'
import { addPrincipals, signedInBrowser } from './helpers/principals.js'

const NOT_SAVED = 'data-testid="not-saved"'

describe.each(DATABASE_KINDS)('documents on %s', (kind) => {
  let site: TestSite
  /** ann, a member signed in through the form. */
  let ann: Browser
  /** bob, a member who uses the API with Basic credentials. */
  let bob: string

  beforeAll(async () => {
    site = await startTestSite(kind)
    await addPrincipals(site, ['member'])
    bob = basicAuth('bob', await addUser(site.database, 'bob', 'member'))
    ann = await signedInBrowser(site.app, 'member')
  })
  afterAll(async () => { await site.close() })

  async function putDoc (slug: string, payload: Record<string, unknown>, authorization = bob) {
    return site.app.inject({ method: 'PUT', url: `/api/docs/${slug}`, headers: { authorization }, payload })
  }

  /** A document created by bob over the API, as a fixture. */
  async function createDoc (slug: string, title = `Title of ${slug}`, body = `Body of ${slug}.`) {
    const response = await putDoc(slug, { title, body })
    expect(response.statusCode).toBe(201)
    return response.json() as { slug: string, title: string, body: string, version: number, updatedAt: string, updatedBy: string }
  }

  async function documentCount (): Promise<number> {
    const row = await site.database.writer.selectFrom('document').select((eb) => eb.fn.countAll<string | number>().as('n')).executeTakeFirstOrThrow()
    return Number(row.n)
  }

  /** Slugs in the order the site lists documents: most recently changed first. */
  async function listedSlugs (): Promise<string[]> {
    const rows = await site.database.writer.selectFrom('document').select('slug')
      .orderBy('updated_at', 'desc').orderBy('slug').execute()
    return rows.map((row) => row.slug)
  }

  function linkedSlugs (html: string): string[] {
    return [...mainOf(html).matchAll(/<li><a href="\/docs\/([^"]+)">/g)].map((match) => match[1]!)
  }

  function expectJsonError (response: LightMyRequestResponse, statusCode: number, code: string, error: string, message?: string) {
    expect(response.statusCode).toBe(statusCode)
    expect(response.headers['content-type']).toBe('application/json; charset=utf-8')
    const body = response.json()
    expect(body).toMatchObject({ statusCode, code, error })
    expect(typeof body.message).toBe('string')
    if (message !== undefined) expect(body.message).toBe(message)
    return body
  }

  describe('a new, empty site', () => {
    let empty: TestSite
    beforeAll(async () => { empty = await startTestSite(kind) })
    afterAll(async () => { await empty.close() })

    it('says there are no documents yet, in the singular and the plural', async () => {
      const home = await empty.app.inject('/')
      expect(home.statusCode).toBe(200)
      expect(mainOf(home.body)).toContain('<p class="lead">0 documents. Search them')
      expect(mainOf(home.body)).toContain('<p class="empty">No documents yet.</p>')

      await empty.app.inject({ method: 'PUT', url: '/api/docs/only-one', headers: { authorization: basicAuth('carl', await addUser(empty.database, 'carl', 'member')) }, payload: { title: 'Only one', body: '' } })
      const after = await empty.app.inject('/')
      expect(mainOf(after.body)).toContain('<p class="lead">1 document. Search them')
      const list = await empty.app.inject('/docs')
      expect(mainOf(list.body)).toContain('<p class="lead">1 document, most recently changed first.</p>')
      expect(mainOf(list.body)).not.toContain('class="pager"')
    })
  })

  describe('HTML pages', () => {
    it('GET / shows the count, a search box and the most recently changed documents', async () => {
      await createDoc('home-page-doc', 'Home page document')
      const response = await site.app.inject('/')
      expect(response.statusCode).toBe(200)
      expect(response.headers['content-type']).toBe('text/html; charset=utf-8')
      const main = mainOf(response.body)
      const total = await documentCount()
      expect(main).toContain(`<p class="lead">${total.toLocaleString('en')} document${total === 1 ? '' : 's'}.`)
      expect(main).toContain('<form class="big-search" role="search" action="/search" method="get">')
      expect(main).toMatch(/<li><a href="\/docs\/home-page-doc">Home page document<\/a> <span class="meta">by bob, \d{4}-\d\d-\d\d \d\d:\d\d UTC<\/span><\/li>/)
      expect(linkedSlugs(response.body)).toEqual((await listedSlugs()).slice(0, 20))
    })

    it('GET /docs pages through all documents, 50 a page, most recently changed first', async () => {
      await seedDocuments(site.database.writer, catalogFor(kind), 60)
      const total = await documentCount()
      const slugs = await listedSlugs()
      const pages = Math.ceil(total / 50)
      expect(pages).toBeGreaterThanOrEqual(2)

      const first = await site.app.inject('/docs')
      expect(first.statusCode).toBe(200)
      expect(mainOf(first.body)).toContain(`<p class="lead">${total.toLocaleString('en')} documents, most recently changed first.</p>`)
      expect(linkedSlugs(first.body)).toEqual(slugs.slice(0, 50))
      expect(mainOf(first.body)).toContain(`<span>Page 1 of ${pages}</span>`)
      expect(mainOf(first.body)).toContain('<a rel="next" href="/docs?page=2">Older →</a>')
      expect(mainOf(first.body)).not.toContain('rel="prev"')

      const second = await site.app.inject('/docs?page=2')
      expect(linkedSlugs(second.body)).toEqual(slugs.slice(50, 100))
      expect(mainOf(second.body)).toContain(`<span>Page 2 of ${pages}</span>`)
      expect(mainOf(second.body)).toContain('<a rel="prev" href="/docs?page=1">← Newer</a>')

      const beyond = await site.app.inject('/docs?page=999')
      expect(beyond.statusCode).toBe(200)
      expect(mainOf(beyond.body)).toContain(`<span>Page ${pages} of ${pages}</span>`)
      expect(linkedSlugs(beyond.body)).toEqual(slugs.slice((pages - 1) * 50))
      expect(mainOf(beyond.body)).not.toContain('rel="next"')

      const nonsense = await site.app.inject('/docs?page=abc')
      expect(nonsense.statusCode).toBe(200)
      expect(linkedSlugs(nonsense.body)).toEqual(slugs.slice(0, 50))
    })

    it('GET /docs/:slug renders the Markdown body', async () => {
      await createDoc('rendered-doc', 'Rendered document', '# Heading\n\nSome *emphasis* and **strength**.\n\n- one\n- two\n\n[a link](https://example.com/page)')
      const response = await site.app.inject('/docs/rendered-doc')
      expect(response.statusCode).toBe(200)
      const main = mainOf(response.body)
      expect(response.body).toContain('<title>Rendered document · Quiesce</title>')
      expect(main).toContain('<h1>Rendered document</h1>')
      expect(main).toMatch(/<p class="meta">Version 1 · last changed by bob, <time datetime="[^"]+">\d{4}-\d\d-\d\d \d\d:\d\d UTC<\/time><\/p>/)
      expect(main).toContain('<h1>Heading</h1>\n<p>Some <em>emphasis</em> and <strong>strength</strong>.</p>\n<ul>\n<li>one</li>\n<li>two</li>\n</ul>\n')
      expect(main).toContain('<a href="https://example.com/page" rel="nofollow noopener">a link</a>')
      expect(main).not.toContain('Saved.')
      // Visitors get no edit button; signed-in people do.
      expect(main).not.toContain('/docs/rendered-doc/edit')
      const signedIn = await site.app.inject({ url: '/docs/rendered-doc', headers: { cookie: ann.cookie } })
      expect(mainOf(signedIn.body)).toMatch(/<a class="button" href="\/docs\/rendered-doc\/edit"[^>]*>Edit<\/a>/)
    })

    it('GET /docs/:slug?saved=1 confirms the save', async () => {
      await createDoc('saved-notice-doc')
      const response = await site.app.inject('/docs/saved-notice-doc?saved=1')
      expect(mainOf(response.body)).toContain('<p class="notice success" role="status">Saved.</p>')
    })

    it.each(['no-such-doc', 'Not-A-Slug'])('GET /docs/%s is a 404 page', async (slug) => {
      const response = await site.app.inject(`/docs/${slug}`)
      expect(response.statusCode).toBe(404)
      expect(response.headers['content-type']).toBe('text/html; charset=utf-8')
      expect(mainOf(response.body)).toContain(`<p class="notice error" role="alert">There is no document &quot;${slug}&quot;</p>`)
      expect(mainOf(response.body)).toContain('<code>QUIESCE_NOT_FOUND</code>')
    })

    it('GET /docs/:slug answers JSON to a client that asks for it', async () => {
      const response = await site.app.inject({ url: '/docs/no-such-doc', headers: { accept: 'application/json' } })
      expect(response.json()).toEqual({ statusCode: 404, code: 'QUIESCE_NOT_FOUND', error: 'Not Found', message: 'There is no document "no-such-doc"' })
    })

    it.each(['/docs/new', '/docs/rendered-doc/edit'])('GET %s needs sign-in: a 401 page with a sign-in link back', async (url) => {
      const response = await site.app.inject(url)
      expect(response.statusCode).toBe(401)
      expect(response.headers['content-type']).toBe('text/html; charset=utf-8')
      const main = mainOf(response.body)
      expect(main).toContain('<h1>Unauthorized</h1>')
      expect(main).toContain('<p class="notice error" role="alert">Sign in to do this</p>')
      expect(main).toContain(`<a class="button" href="/login?next=${encodeURIComponent(url)}">Sign in</a>`)
      expect(main).toContain('<code>QUIESCE_UNAUTHORIZED</code>')
    })

    it('GET /docs/new shows an empty form to a signed-in person', async () => {
      const response = await site.app.inject({ url: '/docs/new', headers: { cookie: ann.cookie } })
      expect(response.statusCode).toBe(200)
      const main = mainOf(response.body)
      expect(main).toContain('<form class="doc-form" method="post" action="/docs" novalidate>')
      expect(main).toMatch(/<input type="hidden" name="_csrf" value="[^"]+">/)
      expect(main).toContain('<input id="title" name="title" type="text" maxlength="200" required value="">')
      expect(main).toContain('<textarea id="body" name="body" rows="18"></textarea>')
      expect(main).not.toContain('name="version"')
      expect(main).not.toContain(NOT_SAVED)
    })

    it('POST /docs creates a document at version 1 and redirects to it', async () => {
      const response = await postForm(site.app, ann, '/docs', { title: '  Oak table leg  ', slug: 'oak-table-leg', body: 'Solid *oak*.\r\nOiled.' })
      expect(response.statusCode).toBe(303)
      expect(response.headers.location).toBe('/docs/oak-table-leg?saved=1')
      expect(response.body).toBe('')

      const row = await documentRow(site.database, 'oak-table-leg')
      expect(row).toMatchObject({
        slug: 'oak-table-leg',
        title: 'Oak table leg',
        body: 'Solid *oak*.\nOiled.',
        version: 1,
        created_by: 'ann',
        updated_by: 'ann',
      })
      expect(row!.updated_at).toBe(row!.created_at)
      expect(Date.parse(row!.created_at)).toBeGreaterThan(Date.now() - 60_000)

      const page = await site.app.inject({ url: response.headers.location as string, headers: { cookie: ann.cookie } })
      expect(page.statusCode).toBe(200)
      expect(mainOf(page.body)).toContain('<p class="notice success" role="status">Saved.</p>')
      expect(mainOf(page.body)).toContain('<p>Solid <em>oak</em>.\nOiled.</p>')
    })

    it('POST /docs makes the address from the title when it is left empty', async () => {
      const response = await postForm(site.app, ann, '/docs', { title: 'Çopper Hïnge, 40 mm!', slug: '', body: '' })
      expect(response.statusCode).toBe(303)
      expect(response.headers.location).toBe('/docs/copper-hinge-40-mm?saved=1')
      expect(await documentRow(site.database, 'copper-hinge-40-mm')).toMatchObject({ title: 'Çopper Hïnge, 40 mm!', body: '', version: 1 })
    })

    it('POST /docs with a bad address is a 400 page that keeps the text and marks the field', async () => {
      const before = await documentCount()
      const response = await postForm(site.app, ann, '/docs', { title: 'Keep "this" <title>', slug: 'Bad Slug', body: 'Keep <this> & that\nbody' })
      expect(response.statusCode).toBe(400)
      expect(response.headers['content-type']).toBe('text/html; charset=utf-8')
      const main = mainOf(response.body)
      expect(main).toContain(NOT_SAVED)
      expect(main).toContain('<h2>Not saved</h2>\n  <p>Please correct the fields marked below.</p>')
      expect(main).toContain('value="Keep &quot;this&quot; &lt;title&gt;">')
      expect(main).toContain('<textarea id="body" name="body" rows="18">Keep &lt;this&gt; &amp; that\nbody</textarea>')
      expect(main).toContain('value="Bad Slug" aria-invalid="true" aria-describedby="slug-error">')
      expect(main).toContain('<p class="field-error" id="slug-error">Address may contain only lower-case letters, digits and single dashes between them.</p>')
      expect(main).not.toContain('id="title-error"')
      expect(main).not.toContain('id="body-error"')
      expect(await documentCount()).toBe(before)
    })

    it('POST /docs with an empty title says the title is required, and only that', async () => {
      const before = await documentCount()
      const response = await postForm(site.app, ann, '/docs', { title: '   ', slug: '', body: 'Body without a title' })
      expect(response.statusCode).toBe(400)
      const main = mainOf(response.body)
      expect(main).toContain(NOT_SAVED)
      expect(main).toContain('<input id="title" name="title" type="text" maxlength="200" required value="   " aria-invalid="true" aria-describedby="title-error">')
      expect(main).toContain('<p class="field-error" id="title-error">Title is required.</p>')
      expect(main).not.toContain('id="slug-error"')
      expect(main).toContain('>Body without a title</textarea>')
      expect(await documentCount()).toBe(before)
    })

    it('POST /docs with a title over 200 characters is refused and keeps it', async () => {
      const title = 'T'.repeat(201)
      const response = await postForm(site.app, ann, '/docs', { title, slug: 'too-long-title', body: 'kept body' })
      expect(response.statusCode).toBe(400)
      const main = mainOf(response.body)
      expect(main).toContain(`value="${title}" aria-invalid="true" aria-describedby="title-error">`)
      expect(main).toContain('<p class="field-error" id="title-error">Title must be at most 200 characters.</p>')
      expect(main).toContain('>kept body</textarea>')
      expect(await documentRow(site.database, 'too-long-title')).toBeUndefined()
    })

    it('POST /docs with a title of exactly 200 characters is accepted', async () => {
      const response = await postForm(site.app, ann, '/docs', { title: 'x'.repeat(200), slug: 'title-at-limit', body: '' })
      expect(response.statusCode).toBe(303)
      expect((await documentRow(site.database, 'title-at-limit'))!.title).toHaveLength(200)
    })

    it('POST /docs with a taken address is a 400 page with the address marked; the other document is untouched', async () => {
      const original = await createDoc('taken-slug', 'The first one')
      const response = await postForm(site.app, ann, '/docs', { title: 'A second one', slug: 'taken-slug', body: 'second body' })
      expect(response.statusCode).toBe(400)
      const main = mainOf(response.body)
      expect(main).toContain('<p class="field-error" id="slug-error">Address is already taken by another document.</p>')
      expect(main).toContain('value="A second one">')
      expect(main).toContain('>second body</textarea>')
      expect(await documentRow(site.database, 'taken-slug')).toMatchObject({ title: 'The first one', version: 1, updated_by: 'bob', updated_at: original.updatedAt })
    })

    it('POST /docs refuses the reserved address "new"', async () => {
      const response = await postForm(site.app, ann, '/docs', { title: 'New', slug: '', body: '' })
      expect(response.statusCode).toBe(400)
      expect(mainOf(response.body)).toContain('<p class="field-error" id="slug-error">Address &quot;new&quot; is reserved.</p>')
      expect(await documentRow(site.database, 'new')).toBeUndefined()
    })

    it('POST /docs without a CSRF token is refused with 403, the text kept', async () => {
      const response = await site.app.inject({
        method: 'POST',
        url: '/docs',
        headers: { cookie: ann.cookie, 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ title: 'Forged', slug: 'forged-doc', body: 'forged body' }).toString(),
      })
      expect(response.statusCode).toBe(403)
      const main = mainOf(response.body)
      expect(main).toContain(NOT_SAVED)
      expect(main).toContain('<h2>Not saved</h2>\n  <p>The form expired or did not come from this site; reload the page and try again.</p>')
      expect(main).toContain('>forged body</textarea>')
      expect(await documentRow(site.database, 'forged-doc')).toBeUndefined()
    })

    it('POST /docs from a visitor without a session is refused and nothing is stored', async () => {
      const response = await site.app.inject({
        method: 'POST',
        url: '/docs',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ title: 'Anonymous', slug: 'anonymous-doc', body: 'anonymous body' }).toString(),
      })
      expect(response.statusCode).toBe(403)
      expect(mainOf(response.body)).toContain('>anonymous body</textarea>')
      expect(await documentRow(site.database, 'anonymous-doc')).toBeUndefined()
    })

    it('the edit form round trip saves version 2 and records who changed it', async () => {
      const created = await createDoc('edit-round-trip', 'Before the edit', 'old body')
      const form = await site.app.inject({ url: '/docs/edit-round-trip/edit', headers: { cookie: ann.cookie } })
      expect(form.statusCode).toBe(200)
      const main = mainOf(form.body)
      expect(main).toContain('<form class="doc-form" method="post" action="/docs/edit-round-trip" novalidate>')
      expect(main).toContain('<input type="hidden" name="version" value="1">')
      expect(main).toContain('<input id="title" name="title" type="text" maxlength="200" required value="Before the edit">')
      expect(main).toContain('<textarea id="body" name="body" rows="18">old body</textarea>')
      expect(main).not.toContain('id="slug"')

      const response = await postForm(site.app, ann, '/docs/edit-round-trip', { title: 'After the edit', body: 'new body', version: '1' })
      expect(response.statusCode).toBe(303)
      expect(response.headers.location).toBe('/docs/edit-round-trip?saved=1')

      const row = await documentRow(site.database, 'edit-round-trip')
      expect(row).toMatchObject({ title: 'After the edit', body: 'new body', version: 2, created_by: 'bob', updated_by: 'ann', created_at: created.updatedAt })
      expect(row!.updated_at >= row!.created_at).toBe(true)
      const page = await site.app.inject('/docs/edit-round-trip')
      expect(mainOf(page.body)).toMatch(/Version 2 · last changed by ann, /)
    })

    it('a save based on a stale version is a 409 page that keeps the text; the stored document is unchanged', async () => {
      await createDoc('stale-edit', 'Stale edit')
      expect((await putDoc('stale-edit', { title: 'Changed by bob', body: 'bob body', expectedVersion: 1 })).statusCode).toBe(200)
      const before = await documentRow(site.database, 'stale-edit')

      const response = await postForm(site.app, ann, '/docs/stale-edit', { title: 'Ann typed this', body: 'Ann\'s long text', version: '1' })
      expect(response.statusCode).toBe(409)
      expect(response.headers['content-type']).toBe('text/html; charset=utf-8')
      const main = mainOf(response.body)
      expect(main).toContain(NOT_SAVED)
      expect(main).toContain('<h2>Not saved</h2>\n  <p>Someone else saved &quot;Changed by bob&quot; after you opened it (it is now at version 2); your change was not saved.</p>')
      expect(main).toContain('value="Ann typed this">')
      expect(main).toContain('<textarea id="body" name="body" rows="18">Ann&#39;s long text</textarea>')
      expect(await documentRow(site.database, 'stale-edit')).toEqual(before)
      expect(before).toMatchObject({ title: 'Changed by bob', version: 2, updated_by: 'bob' })
    })

    it('an edit with an empty title is a 400 page that keeps the text; the stored document is unchanged', async () => {
      await createDoc('edit-invalid', 'Edit invalid', 'stored body')
      const before = await documentRow(site.database, 'edit-invalid')
      const response = await postForm(site.app, ann, '/docs/edit-invalid', { title: '', body: 'typed body', version: '1' })
      expect(response.statusCode).toBe(400)
      const main = mainOf(response.body)
      expect(main).toContain('<p class="field-error" id="title-error">Title is required.</p>')
      expect(main).toContain('<input type="hidden" name="version" value="1">')
      expect(main).toContain('>typed body</textarea>')
      expect(await documentRow(site.database, 'edit-invalid')).toEqual(before)
    })

    it('an edit of a document that does not exist is a 404 page', async () => {
      const response = await postForm(site.app, ann, '/docs/never-created', { title: 'x', body: 'y', version: '1' })
      expect(response.statusCode).toBe(404)
      expect(mainOf(response.body)).toContain('<code>QUIESCE_NOT_FOUND</code>')
      expect(await documentRow(site.database, 'never-created')).toBeUndefined()
    })

    it('POST /docs/:slug/delete deletes the document and goes home', async () => {
      await createDoc('to-delete')
      const response = await postForm(site.app, ann, '/docs/to-delete/delete', { version: '1' })
      expect(response.statusCode).toBe(303)
      expect(response.headers.location).toBe('/')
      expect(await documentRow(site.database, 'to-delete')).toBeUndefined()
      expect((await site.app.inject('/docs/to-delete')).statusCode).toBe(404)
    })

    it('a delete based on a stale version is refused with 409 and deletes nothing', async () => {
      await createDoc('stale-delete')
      await putDoc('stale-delete', { title: 'Changed', body: '', expectedVersion: 1 })
      const response = await postForm(site.app, ann, '/docs/stale-delete/delete', { version: '1' })
      expect(response.statusCode).toBe(409)
      expect(mainOf(response.body)).toContain('<code>QUIESCE_CONFLICT</code>')
      expect(await documentRow(site.database, 'stale-delete')).toMatchObject({ version: 2 })
    })

    it('a delete from a visitor is refused and deletes nothing', async () => {
      await createDoc('visitor-delete')
      const response = await site.app.inject({ method: 'POST', url: '/docs/visitor-delete/delete', payload: { version: '1' } })
      expect(response.statusCode).toBe(403)
      expect(mainOf(response.body)).toContain('<code>QUIESCE_CSRF_INVALID</code>')
      expect(await documentRow(site.database, 'visitor-delete')).toMatchObject({ version: 1 })
    })
  })

  describe('JSON API', () => {
    it('GET /api/docs pages with limit and offset: {total, limit, offset, docs}', async () => {
      await createDoc('api-list-a')
      await createDoc('api-list-b')
      const slugs = await listedSlugs()
      const response = await site.app.inject('/api/docs?limit=2&offset=1')
      expect(response.statusCode).toBe(200)
      expect(response.headers['content-type']).toBe('application/json; charset=utf-8')
      const body = response.json()
      expect(Object.keys(body).sort()).toEqual(['docs', 'limit', 'offset', 'total'])
      expect(body.total).toBe(slugs.length)
      expect(body.limit).toBe(2)
      expect(body.offset).toBe(1)
      expect(body.docs.map((doc: { slug: string }) => doc.slug)).toEqual(slugs.slice(1, 3))
      const row = await documentRow(site.database, body.docs[0].slug)
      expect(body.docs[0]).toEqual({ slug: row!.slug, title: row!.title, version: row!.version, updatedAt: row!.updated_at, updatedBy: row!.updated_by })
    })

    it('GET /api/docs defaults to the first 20', async () => {
      const body = (await site.app.inject('/api/docs')).json()
      expect(body.limit).toBe(20)
      expect(body.offset).toBe(0)
      expect(body.docs.map((doc: { slug: string }) => doc.slug)).toEqual((await listedSlugs()).slice(0, 20))
    })

    it.each(['limit=0', 'limit=101', 'offset=-1', 'limit=abc'])('GET /api/docs?%s is a 400 QUIESCE_INVALID_INPUT', async (query) => {
      expectJsonError(await site.app.inject(`/api/docs?${query}`), 400, 'QUIESCE_INVALID_INPUT', 'Bad Request')
    })

    it('GET /api/docs/:slug is {slug, title, body, version, updatedAt, updatedBy}', async () => {
      await createDoc('api-show', 'API show', 'Some **body**')
      const response = await site.app.inject('/api/docs/api-show')
      expect(response.statusCode).toBe(200)
      const row = await documentRow(site.database, 'api-show')
      expect(response.json()).toEqual({ slug: 'api-show', title: 'API show', body: 'Some **body**', version: 1, updatedAt: row!.updated_at, updatedBy: 'bob' })
    })

    it('GET /api/docs/:slug of a missing document is 404 QUIESCE_NOT_FOUND', async () => {
      const response = await site.app.inject('/api/docs/api-missing')
      expect(response.json()).toEqual({ statusCode: 404, code: 'QUIESCE_NOT_FOUND', error: 'Not Found', message: 'There is no document "api-missing"' })
    })

    it('an unknown API route is a JSON 404', async () => {
      const response = await site.app.inject('/api/no-such-route')
      expect(response.statusCode).toBe(404)
      expect(response.json()).toEqual({ statusCode: 404, code: 'QUIESCE_NOT_FOUND', error: 'Not Found', message: 'There is nothing at /api/no-such-route' })
    })

    it('PUT /api/docs/:slug creates with 201 and answers the stored document', async () => {
      const response = await putDoc('api-create', { title: '  API create  ', body: 'Line one\r\nLine two' })
      expect(response.statusCode).toBe(201)
      const row = await documentRow(site.database, 'api-create')
      expect(row).toMatchObject({ title: 'API create', body: 'Line one\nLine two', version: 1, created_by: 'bob', updated_by: 'bob' })
      expect(response.json()).toEqual({ slug: 'api-create', title: 'API create', body: 'Line one\nLine two', version: 1, updatedAt: row!.updated_at, updatedBy: 'bob' })
    })

    it('PUT /api/docs/:slug updates with 200, checking expectedVersion', async () => {
      await createDoc('api-update')
      const response = await putDoc('api-update', { title: 'Updated', body: 'updated body', expectedVersion: 1 })
      expect(response.statusCode).toBe(200)
      const row = await documentRow(site.database, 'api-update')
      expect(row).toMatchObject({ title: 'Updated', body: 'updated body', version: 2, created_by: 'bob', updated_by: 'bob' })
      expect(response.json()).toEqual({ slug: 'api-update', title: 'Updated', body: 'updated body', version: 2, updatedAt: row!.updated_at, updatedBy: 'bob' })
    })

    it('PUT /api/docs/:slug without expectedVersion overwrites whatever is stored', async () => {
      await createDoc('api-overwrite')
      await putDoc('api-overwrite', { title: 'Second', body: '' })
      const response = await putDoc('api-overwrite', { title: 'Third', body: '' })
      expect(response.statusCode).toBe(200)
      expect(response.json().version).toBe(3)
      expect(await documentRow(site.database, 'api-overwrite')).toMatchObject({ title: 'Third', version: 3 })
    })

    it('PUT /api/docs/:slug with a stale expectedVersion is 409 QUIESCE_CONFLICT and changes nothing', async () => {
      await createDoc('api-stale')
      await putDoc('api-stale', { title: 'Version two', body: 'two', expectedVersion: 1 })
      const before = await documentRow(site.database, 'api-stale')
      const response = await putDoc('api-stale', { title: 'Lost update', body: 'lost', expectedVersion: 1 })
      expect(response.statusCode).toBe(409)
      expect(response.json()).toEqual({ statusCode: 409, code: 'QUIESCE_CONFLICT', error: 'Conflict', message: 'Document "api-stale" is at version 2, not 1' })
      expect(await documentRow(site.database, 'api-stale')).toEqual(before)
    })

    it('PUT /api/docs/:slug with an expectedVersion for a missing document is 409 and creates nothing', async () => {
      const response = await putDoc('api-gone', { title: 'Gone', body: '', expectedVersion: 3 })
      expectJsonError(response, 409, 'QUIESCE_CONFLICT', 'Conflict', 'Document "api-gone" does not exist (any more); expected version 3')
      expect(await documentRow(site.database, 'api-gone')).toBeUndefined()
    })

    it('PUT /api/docs/:slug with bad fields is 400 QUIESCE_INVALID_INPUT naming each field', async () => {
      const response = await putDoc('Bad_Slug', { title: '', body: 42 })
      expect(response.statusCode).toBe(400)
      expect(response.json()).toEqual({
        statusCode: 400,
        code: 'QUIESCE_INVALID_INPUT',
        error: 'Bad Request',
        message: 'slug may contain only lower-case letters, digits and single dashes between them; title is required; body is required',
        fields: {
          slug: 'may contain only lower-case letters, digits and single dashes between them',
          title: 'is required',
          body: 'is required',
        },
      })
      expect(await documentRow(site.database, 'Bad_Slug')).toBeUndefined()
    })

    it('PUT /api/docs/:slug refuses a title over 200 and a body over 100,000 characters', async () => {
      const response = await putDoc('api-too-long', { title: 't'.repeat(201), body: 'b'.repeat(100_001) })
      expect(response.statusCode).toBe(400)
      expect(response.json().fields).toEqual({ title: 'must be at most 200 characters', body: 'must be at most 100,000 characters' })
      expect(await documentRow(site.database, 'api-too-long')).toBeUndefined()
    })

    it('PUT /api/docs/:slug with a non-integer expectedVersion is 400 QUIESCE_INVALID_INPUT', async () => {
      const response = await putDoc('api-bad-version', { title: 't', body: 'b', expectedVersion: 'one' })
      const body = expectJsonError(response, 400, 'QUIESCE_INVALID_INPUT', 'Bad Request')
      expect(body.message).toContain('expectedVersion')
      expect(await documentRow(site.database, 'api-bad-version')).toBeUndefined()
    })

    it('PUT and DELETE without credentials are 401 QUIESCE_UNAUTHORIZED', async () => {
      await createDoc('api-anonymous')
      const put = await site.app.inject({ method: 'PUT', url: '/api/docs/api-anonymous', payload: { title: 'Anonymous', body: '' } })
      expect(put.statusCode).toBe(401)
      expect(put.json()).toEqual({ statusCode: 401, code: 'QUIESCE_UNAUTHORIZED', error: 'Unauthorized', message: 'Sign in to do this' })
      const created = await site.app.inject({ method: 'PUT', url: '/api/docs/api-anonymous-new', payload: { title: 'Anonymous', body: '' } })
      expect(created.statusCode).toBe(401)
      const deleted = await site.app.inject({ method: 'DELETE', url: '/api/docs/api-anonymous' })
      expect(deleted.json()).toEqual({ statusCode: 401, code: 'QUIESCE_UNAUTHORIZED', error: 'Unauthorized', message: 'Sign in to do this' })
      expect(await documentRow(site.database, 'api-anonymous')).toMatchObject({ title: 'Title of api-anonymous', version: 1 })
      expect(await documentRow(site.database, 'api-anonymous-new')).toBeUndefined()
    })

    it('wrong Basic credentials are 401, and nothing is written', async () => {
      const response = await putDoc('api-wrong-password', { title: 'x', body: '' }, basicAuth('bob', 'not-the-password'))
      expect(response.json()).toEqual({ statusCode: 401, code: 'QUIESCE_UNAUTHORIZED', error: 'Unauthorized', message: 'Sign in to do this' })
      expect(await documentRow(site.database, 'api-wrong-password')).toBeUndefined()
    })

    it('DELETE /api/docs/:slug is 204, then the document is 404', async () => {
      await createDoc('api-delete')
      const response = await site.app.inject({ method: 'DELETE', url: '/api/docs/api-delete', headers: { authorization: bob } })
      expect(response.statusCode).toBe(204)
      expect(response.body).toBe('')
      expect(await documentRow(site.database, 'api-delete')).toBeUndefined()
      const after = await site.app.inject('/api/docs/api-delete')
      expect(after.json()).toEqual({ statusCode: 404, code: 'QUIESCE_NOT_FOUND', error: 'Not Found', message: 'There is no document "api-delete"' })
      const again = await site.app.inject({ method: 'DELETE', url: '/api/docs/api-delete', headers: { authorization: bob } })
      expectJsonError(again, 404, 'QUIESCE_NOT_FOUND', 'Not Found')
    })

    it('DELETE /api/docs/:slug?expectedVersion= refuses a stale version with 409', async () => {
      await createDoc('api-delete-stale')
      await putDoc('api-delete-stale', { title: 'v2', body: '' })
      const response = await site.app.inject({ method: 'DELETE', url: '/api/docs/api-delete-stale?expectedVersion=1', headers: { authorization: bob } })
      expect(response.json()).toEqual({ statusCode: 409, code: 'QUIESCE_CONFLICT', error: 'Conflict', message: 'Document "api-delete-stale" is at version 2, not 1' })
      expect(await documentRow(site.database, 'api-delete-stale')).toMatchObject({ version: 2 })
      const current = await site.app.inject({ method: 'DELETE', url: '/api/docs/api-delete-stale?expectedVersion=2', headers: { authorization: bob } })
      expect(current.statusCode).toBe(204)
      expect(await documentRow(site.database, 'api-delete-stale')).toBeUndefined()
    })

    it('a session cookie works for API writes with the x-csrf-token header, and only with it', async () => {
      const refused = await site.app.inject({ method: 'PUT', url: '/api/docs/api-session', headers: { cookie: ann.cookie }, payload: { title: 'By session', body: '' } })
      expect(refused.json()).toEqual({
        statusCode: 403,
        code: 'QUIESCE_CSRF_INVALID',
        error: 'Forbidden',
        message: 'The form expired or did not come from this site; reload the page and try again',
      })
      expect(await documentRow(site.database, 'api-session')).toBeUndefined()

      const wrongToken = await site.app.inject({ method: 'PUT', url: '/api/docs/api-session', headers: { cookie: ann.cookie, 'x-csrf-token': 'forged' }, payload: { title: 'By session', body: '' } })
      expectJsonError(wrongToken, 403, 'QUIESCE_CSRF_INVALID', 'Forbidden')
      expect(await documentRow(site.database, 'api-session')).toBeUndefined()

      const created = await site.app.inject({ method: 'PUT', url: '/api/docs/api-session', headers: { cookie: ann.cookie, 'x-csrf-token': ann.csrf }, payload: { title: 'By session', body: '' } })
      expect(created.statusCode).toBe(201)
      expect(created.json().updatedBy).toBe('ann')
      expect(await documentRow(site.database, 'api-session')).toMatchObject({ created_by: 'ann', version: 1 })

      const deleteRefused = await site.app.inject({ method: 'DELETE', url: '/api/docs/api-session', headers: { cookie: ann.cookie } })
      expectJsonError(deleteRefused, 403, 'QUIESCE_CSRF_INVALID', 'Forbidden')
      expect(await documentRow(site.database, 'api-session')).toBeDefined()
      const deleted = await site.app.inject({ method: 'DELETE', url: '/api/docs/api-session', headers: { cookie: ann.cookie, 'x-csrf-token': ann.csrf } })
      expect(deleted.statusCode).toBe(204)
      expect(await documentRow(site.database, 'api-session')).toBeUndefined()
    })

    it('GET requests need no CSRF token and no credentials', async () => {
      await createDoc('api-readable')
      expect((await site.app.inject('/api/docs/api-readable')).statusCode).toBe(200)
      expect((await site.app.inject({ url: '/api/docs/api-readable', headers: { cookie: ann.cookie } })).statusCode).toBe(200)
    })

    it('two clients creating the same address at once: one creates (201), the other updates it (200)', async () => {
      const [one, two] = await Promise.all([
        putDoc('api-race', { title: 'From one', body: '' }),
        putDoc('api-race', { title: 'From two', body: '' }),
      ])
      expect([one.statusCode, two.statusCode].sort()).toEqual([200, 201])
      const row = await documentRow(site.database, 'api-race')
      expect(row!.version).toBe(2)
      const last = one.statusCode === 200 ? one : two
      expect(row!.title).toBe(last.json().title)
      const rows = await site.database.writer.selectFrom('document').select('id').where('slug', '=', 'api-race').execute()
      expect(rows).toHaveLength(1)
    })

    it('the total the pages show is kept by the database: right after creates and deletes at once, a create that conflicts, and seeding', async () => {
      const before = await documentCount()
      const slugs = Array.from({ length: 12 }, (_, i) => `count-${i}`)
      const created = await Promise.all(slugs.map((slug) => putDoc(slug, { title: slug, body: '' })))
      expect(created.map((response) => response.statusCode)).toEqual(slugs.map(() => 201))
      const answers = await Promise.all([
        ...slugs.slice(0, 6).map((slug) => site.app.inject({ method: 'DELETE', url: `/api/docs/${slug}`, headers: { authorization: bob } })),
        ...slugs.slice(6).map((slug) => putDoc(`${slug}-more`, { title: slug, body: '' })),
        // Two creates of one address: the second is an update, and counts nothing.
        putDoc('count-same', { title: 'one', body: '' }),
        putDoc('count-same', { title: 'two', body: '' }),
      ])
      expect(answers.filter((response) => response.statusCode >= 300)).toEqual([])
      expect(await seedDocuments(site.database.writer, catalogFor(kind), 3)).toBe(3)
      const total = await documentCount()
      expect(total).toBe(before + 12 - 6 + 6 + 1 + 3)
      expect((await site.app.inject('/api/docs?limit=1')).json().total).toBe(total)
      expect(mainOf((await site.app.inject('/docs')).body)).toContain(`<p class="lead">${total.toLocaleString('en')} documents, most recently changed first.</p>`)
    })

    // PostgreSQL's statement-level triggers fire for statements that change no row (SQLite's row triggers do not).
    if (kind === 'postgres') {
      it('a statement that removes no document leaves the count, and its lock, alone', async () => {
        const before = await documentCount()
        // An open transaction whose delete matched nothing: a create elsewhere does not wait for it.
        const held = await site.database.writer.connection().execute(async (connection) => {
          await sql`begin`.execute(connection)
          await sql`delete from document where slug = 'no-such-document'`.execute(connection)
          const created = await Promise.race([
            putDoc('count-while-held', { title: 'created', body: '' }).then((response) => response.statusCode),
            new Promise<string>((resolve) => setTimeout(() => resolve('waited'), 3000)),
          ])
          await sql`rollback`.execute(connection)
          return created
        })
        expect(held).toBe(201)
        expect(await documentCount()).toBe(before + 1)
      })
    }
  })
})
