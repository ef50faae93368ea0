import type { LightMyRequestResponse } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { formatTime } from '../app/web/view.js'
import { addUser, basicAuth, documentRow, mainOf, postForm, startTestSite, type Browser, type TestSite } from './helpers/app.js'
import { DATABASE_KINDS } from './helpers/databases.js'
import { backToNormal, fromNow, switchTo } from './helpers/maintenance.js'
import { addPrincipals, basicOf, signedInBrowser } from './helpers/principals.js'

const BOSS = basicOf('maintainer')
const BOB = basicAuth('bob', 'bob-password')
const ROOT = basicOf('emergency')
const REASON = 'Reindexing the catalog'
const READ_ONLY = {
  statusCode: 503,
  code: 'QUIESCE_READ_ONLY',
  error: 'Service Unavailable',
  message: `The site is in Concurrent (read-only) maintenance: ${REASON}; nothing was saved`,
}

/** What a member typed: Markdown with characters that must come back escaped, not lost. */
const TYPED_TITLE = 'Field guide, "revised" & <improved>'
const TYPED_BODY = 'Lanternfish glow.\n\nNew: the quokkaberry grows <b>here</b> & "there".'
const TYPED_TITLE_HTML = 'Field guide, &quot;revised&quot; &amp; &lt;improved&gt;'
const TYPED_BODY_HTML = 'Lanternfish glow.\n\nNew: the quokkaberry grows &lt;b&gt;here&lt;/b&gt; &amp; &quot;there&quot;.'

describe.each(DATABASE_KINDS)('concurrent (read-only) mode on %s', (kind) => {
  let site: TestSite
  let ann: Browser
  let boss: Browser
  let since: string
  let until: string

  beforeAll(async () => {
    site = await startTestSite(kind)
    await addPrincipals(site, ['maintainer', 'member', 'emergency'])
    await addUser(site.database, 'bob', 'member')
    ann = await signedInBrowser(site.app, 'member')
    boss = await signedInBrowser(site.app, 'maintainer')
    const created = await site.app.inject({
      method: 'PUT',
      url: '/api/docs/field-guide',
      headers: { authorization: BOSS },
      payload: { title: 'Field guide', body: 'Lanternfish glow.' },
    })
    expect(created.statusCode).toBe(201)
    const state = await switchTo(site.app, BOSS, 'concurrent', { reason: REASON, until: fromNow(3600) })
    since = state.since
    until = state.until!
  })
  afterAll(async () => {
    await backToNormal(site.app, ROOT)
    await site.close()
  })

  function get (url: string, headers: Record<string, string> = {}) {
    return site.app.inject({ url, headers })
  }

  async function searchSlugs (query: string): Promise<string[]> {
    const response = await get(`/api/search?q=${encodeURIComponent(query)}`)
    expect(response.statusCode).toBe(200)
    return (response.json() as { hits: Array<{ slug: string }> }).hits.map((hit) => hit.slug)
  }

  /** The banner's sentence for each reader of the page (app/web/banner.ts). */
  const MEANING = {
    visitor: 'You can read and search as usual; nothing can be changed until it ends.',
    member: 'You can read and search, but changes cannot be saved until it ends.',
    maintainer: 'You are the maintainer: your changes are saved; everyone else can only read.',
    emergency: 'You are the emergency user: your changes are saved; everyone else can only read.',
  }

  function expectBanner (response: LightMyRequestResponse, reader: keyof typeof MEANING): void {
    const html = response.body
    expect(html).toMatch(/<div id="maintenance-banner" class="maintenance-banner mode-concurrent" role="status" aria-live="polite" data-mode="concurrent" data-version="\d+" data-can-write="(true|false)" data-closed="false">/)
    expect(html).toContain(`data-can-write="${reader === 'maintainer' || reader === 'emergency'}"`)
    expect(html).toContain(`<p><strong>Concurrent (read-only) maintenance</strong>: ${REASON}</p>`)
    expect(html).toContain(`<p class="banner-times">Since <time datetime="${since}">${formatTime(since)}</time>. Expected to end <time datetime="${until}" data-countdown>${formatTime(until)}</time>.</p>`)
    expect(html).toContain(`<p class="banner-write">${MEANING[reader]}</p>`)
    for (const [other, words] of Object.entries(MEANING)) if (other !== reader) expect(html).not.toContain(words)
  }

  it('visitors and members read and search; every page shows the banner with reason, since and expected end', async () => {
    for (const [who, headers] of [['visitor', {}], ['member', { cookie: ann.cookie }]] as const) {
      for (const url of ['/', '/docs', '/docs/field-guide', '/search?q=lanternfish', '/login']) {
        const response = await get(url, headers)
        expect(response.statusCode, `${who} ${url}`).toBe(200)
        expect(response.headers['quiesce-mode']).toBe('concurrent')
        expectBanner(response, who)
      }
      const search = await get('/search?q=lanternfish', headers)
      expect(mainOf(search.body)).toContain('<a href="/docs/field-guide">Field guide</a>')
      const notFound = await get('/docs/no-such-doc', headers)
      expect(notFound.statusCode).toBe(404)
      expectBanner(notFound, who)
    }
    const editPage = await get('/docs/field-guide/edit', { cookie: ann.cookie })
    expect(editPage.statusCode).toBe(200)
    expectBanner(editPage, 'member')
    expect(editPage.body).toContain('<p class="notice warn" id="save-off" data-write-note>Saving is off until the maintenance ends. Trying keeps your text on this page, so nothing is lost, and you can save it then.</p>')

    expect((await get('/api/docs/field-guide')).json()).toMatchObject({ slug: 'field-guide', title: 'Field guide', version: 1 })
    expect(await searchSlugs('lanternfish')).toEqual(['field-guide'])
  })

  it('a member sees the Edit button disabled with the reason; the maintainer sees it enabled', async () => {
    const member = mainOf((await get('/docs/field-guide', { cookie: ann.cookie })).body)
    expect(member).toContain('<a class="button" href="/docs/field-guide/edit" data-requires-write data-off-note="edit-off" aria-disabled="true" aria-describedby="edit-off">Edit</a>')
    expect(member).toContain('<span id="edit-off" class="write-note" data-write-note>Editing is off until the maintenance ends.</span>')
    const memberPage = (await get('/docs/field-guide', { cookie: ann.cookie })).body
    expect(memberPage).toContain('<a href="/docs/new" data-requires-write aria-disabled="true" data-off-note="new-document-off" aria-describedby="new-document-off">New document</a>')
    expect(memberPage).toContain('<span id="new-document-off" class="nav-off" data-write-note>off during maintenance</span>')

    const maintainerPage = await get('/docs/field-guide', { cookie: boss.cookie })
    expectBanner(maintainerPage, 'maintainer')
    const maintainer = mainOf(maintainerPage.body)
    expect(maintainer).toContain('<a class="button" href="/docs/field-guide/edit" data-requires-write data-off-note="edit-off">Edit</a>')
    expect(maintainer).toContain('<span id="edit-off" class="write-note" data-write-note hidden>')
    expect(maintainerPage.body).toContain('<a href="/docs/new" data-requires-write data-off-note="new-document-off">New document</a>')
    expect(maintainerPage.body).toContain('<span id="new-document-off" class="nav-off" data-write-note hidden>')

    expectBanner(await get('/docs/field-guide', { authorization: ROOT }), 'emergency')
  })

  it('the edit form opened by its address: Delete is disabled with the reason, like Edit, and Save says it will be refused', async () => {
    const member = mainOf((await get('/docs/field-guide/edit', { cookie: ann.cookie })).body)
    expect(member).toContain('<button type="submit" class="danger" data-requires-write data-off-note="delete-off" disabled aria-describedby="delete-off">Delete this document</button>')
    expect(member).toContain('<span id="delete-off" class="write-note" data-write-note>Deleting is off until the maintenance ends.</span>')
    expect(member).toContain('<button type="submit" data-save data-off-note="save-off" aria-describedby="save-off">Try to save</button>')
    const newForm = mainOf((await get('/docs/new', { cookie: ann.cookie })).body)
    expect(newForm).toContain('<button type="submit" data-save data-off-note="save-off" aria-describedby="save-off">Try to save</button>')

    const maintainer = mainOf((await get('/docs/field-guide/edit', { cookie: boss.cookie })).body)
    expect(maintainer).toContain('<button type="submit" class="danger" data-requires-write data-off-note="delete-off">Delete this document</button>')
    expect(maintainer).toContain('<span id="delete-off" class="write-note" data-write-note hidden>')
    expect(maintainer).toContain('<button type="submit" data-save data-off-note="save-off">Save</button>')
  })

  it('a member\'s API writes get 503 QUIESCE_READ_ONLY with Retry-After, and nothing persists: no row, no catalog entry', async () => {
    const before = await documentRow(site.database, 'field-guide')
    const attempts = [
      { method: 'PUT' as const, url: '/api/docs/read-only-new', payload: { title: 'Zebraquartz notes', body: 'All about zebraquartz.' } },
      { method: 'PUT' as const, url: '/api/docs/field-guide', payload: { title: 'Field guide', body: 'Quokkaberry instead.', expectedVersion: 1 } },
      { method: 'DELETE' as const, url: '/api/docs/field-guide', payload: undefined },
    ]
    for (const { method, url, payload } of attempts) {
      const response = await site.app.inject({ method, url, headers: { authorization: BOB }, payload })
      expect(response.statusCode, `${method} ${url}`).toBe(503)
      expect(response.headers['quiesce-mode']).toBe('concurrent')
      const retryAfter = Number(response.headers['retry-after'])
      expect(retryAfter).toBeGreaterThan(3590)
      expect(retryAfter).toBeLessThanOrEqual(3600)
      expect(response.json()).toEqual(READ_ONLY)
    }
    expect(await documentRow(site.database, 'read-only-new')).toBeUndefined()
    expect(await documentRow(site.database, 'field-guide')).toEqual(before)
    expect(await searchSlugs('zebraquartz')).toEqual([])
    expect(await searchSlugs('quokkaberry')).toEqual([])
    expect(await searchSlugs('lanternfish')).toEqual(['field-guide'])
  })

  it('a member\'s form save comes back as a 503 page that says "Not saved" and holds the title and text they typed', async () => {
    const before = await documentRow(site.database, 'field-guide')
    const edit = await postForm(site.app, ann, '/docs/field-guide', { title: TYPED_TITLE, body: TYPED_BODY, version: '1' })
    expect(edit.statusCode).toBe(503)
    expect(edit.headers['content-type']).toBe('text/html; charset=utf-8')
    const retryAfter = Number(edit.headers['retry-after'])
    expect(retryAfter).toBeGreaterThan(3500)
    // One message: the banner, which would say the same, is hidden, and so is the form's own note.
    expect(edit.body).toMatch(/<div id="maintenance-banner" [^>]* data-state-in-page hidden>/)
    const main = mainOf(edit.body)
    expect(main).toContain('<h1>Edit document</h1>')
    expect(main.match(/role="alert"/g)).toHaveLength(1)
    expect(main).not.toContain('class="notice warn"')
    expect(main).toContain([
      '<div class="notice error not-saved" role="alert" data-testid="not-saved">',
      '  <h2>Not saved</h2>',
      `  <p>The site is in Concurrent (read-only) maintenance, so changes cannot be saved until it ends. The reason given: ${REASON}.</p>`,
      `  <p id="save-off" data-write-note>Try again after <time datetime="${until}" data-countdown>${formatTime(until)}</time>, when the maintenance is expected to end.</p>`,
      '  <p class="maintenance-over" data-when-writable hidden>The maintenance is over: you can save now.</p>',
      '  <p class="kept">Your text is still below, exactly as you typed it. <button type="button" class="secondary" data-copy="body" hidden>Copy the text</button> <span class="copy-status" data-copy-status role="status"></span></p>',
      '</div>',
    ].join('\n'))
    expect(main).toContain(`<input id="title" name="title" type="text" maxlength="200" required value="${TYPED_TITLE_HTML}">`)
    expect(main).toContain(`<textarea id="body" name="body" rows="18">${TYPED_BODY_HTML}</textarea>`)
    expect(main).toContain('<input type="hidden" name="version" value="1">')

    const create = await postForm(site.app, ann, '/docs', { title: 'Zebraquartz field notes', slug: '', body: 'Zebraquartz sparkles.' })
    expect(create.statusCode).toBe(503)
    const created = mainOf(create.body)
    expect(created).toContain('<h1>New document</h1>')
    expect(created).toContain('<h2>Not saved</h2>')
    expect(created).toContain('value="Zebraquartz field notes"')
    expect(created).toContain('<textarea id="body" name="body" rows="18">Zebraquartz sparkles.</textarea>')

    expect(await documentRow(site.database, 'field-guide')).toEqual(before)
    expect(await documentRow(site.database, 'zebraquartz-field-notes')).toBeUndefined()
    expect(await searchSlugs('quokkaberry')).toEqual([])
    expect(await searchSlugs('zebraquartz')).toEqual([])
  })

  it('the maintainer\'s and the emergency user\'s writes are saved, catalog included', async () => {
    const byApi = await site.app.inject({ method: 'PUT', url: '/api/docs/maintainer-notes', headers: { authorization: BOSS }, payload: { title: 'Maintainer notes', body: 'Platypusite index rebuilt.' } })
    expect(byApi.statusCode).toBe(201)
    expect(await documentRow(site.database, 'maintainer-notes')).toMatchObject({ title: 'Maintainer notes', created_by: 'boss', version: 1 })

    const byForm = await postForm(site.app, boss, '/docs', { title: 'Maintainer form', slug: '', body: 'Narwhalite too.' })
    expect(byForm.statusCode).toBe(303)
    expect(byForm.headers.location).toBe('/docs/maintainer-form?saved=1')
    expect(await documentRow(site.database, 'maintainer-form')).toMatchObject({ created_by: 'boss' })

    const byRoot = await site.app.inject({ method: 'PUT', url: '/api/docs/emergency-notes', headers: { authorization: ROOT }, payload: { title: 'Emergency notes', body: 'Wombatine checked.' } })
    expect(byRoot.statusCode).toBe(201)
    expect(await documentRow(site.database, 'emergency-notes')).toMatchObject({ created_by: 'root' })

    expect(await searchSlugs('platypusite')).toEqual(['maintainer-notes'])
    expect(await searchSlugs('narwhalite')).toEqual(['maintainer-form'])
    expect(await searchSlugs('wombatine')).toEqual(['emergency-notes'])
  })

  it('back in normal mode, the member\'s same save succeeds and the banner is gone', async () => {
    await switchTo(site.app, BOSS, 'normal')
    const edit = await postForm(site.app, ann, '/docs/field-guide', { title: TYPED_TITLE, body: TYPED_BODY, version: '1' })
    expect(edit.statusCode).toBe(303)
    expect(edit.headers.location).toBe('/docs/field-guide?saved=1')
    expect(edit.headers['quiesce-mode']).toBe('normal')
    expect(await documentRow(site.database, 'field-guide')).toMatchObject({ title: TYPED_TITLE, body: TYPED_BODY, version: 2, updated_by: 'ann' })
    expect(await searchSlugs('quokkaberry')).toEqual(['field-guide'])

    const page = await get('/docs/field-guide', { cookie: ann.cookie })
    expect(page.body).toMatch(/<div id="maintenance-banner" [^>]*data-mode="normal"[^>]* hidden>\n<\/div>/)
    expect(mainOf(page.body)).toContain('<a class="button" href="/docs/field-guide/edit" data-requires-write data-off-note="edit-off">Edit</a>')

    const api = await site.app.inject({ method: 'PUT', url: '/api/docs/read-only-new', headers: { authorization: BOB }, payload: { title: 'Zebraquartz notes', body: 'All about zebraquartz.' } })
    expect(api.statusCode).toBe(201)
    expect(await searchSlugs('zebraquartz')).toEqual(['read-only-new'])
  })
})
