import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import type { LightMyRequestResponse } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { csrfTokenIn, documentRow, postForm, sessionCookieOf, startTestSite, type Browser, type TestSite } from './helpers/app.js'
import { DATABASE_KINDS } from './helpers/databases.js'
import { backToNormal, switchTo } from './helpers/maintenance.js'
import { addPrincipals, basicOf, signedInBrowser } from './helpers/principals.js'

/** Text a person may type anywhere, built to break out of HTML text, attributes and scripts. */
const HOSTILE = '<script>alert("q")</script><img src=x onerror=alert(1)> & \' "'
const RAW_MARKERS = ['<script>alert', '<img src=x onerror']

const POLICY = "default-src 'self';base-uri 'self';font-src 'self' https: data:;form-action 'self';frame-ancestors 'none';img-src 'self' data:;object-src 'none';script-src 'self';script-src-attr 'none';style-src 'self'"

/** The page has none of the hostile text as markup, and has it as text. */
function expectEscaped (response: LightMyRequestResponse, where: string): void {
  expect(response.statusCode, where).toBeLessThan(500)
  for (const marker of RAW_MARKERS) expect(response.body, where).not.toContain(marker)
  expect(response.body, where).toMatch(/&lt;script&gt;alert\((&quot;|&#34;|")q(&quot;|&#34;|")\)&lt;\/script&gt;/)
}

/** Under the strict policy nothing inline may run: no inline script, style or event handler. */
function expectNothingInline (response: LightMyRequestResponse, where: string): void {
  expect(response.headers['content-security-policy'], where).toBe(POLICY)
  const html = response.body
  for (const script of html.matchAll(/<script\b[^>]*>/g)) expect(script[0], where).toMatch(/\ssrc="\/static\//)
  const tags = html.match(/<[a-z][^<>]*>/gi) ?? []
  // Attribute values (escaped text, which may read "onerror=") are not attributes.
  expect(tags.map((tag) => tag.replace(/"[^"]*"/g, '""')).filter((tag) => /\sstyle=|\son[a-z]+=/i.test(tag)), where).toEqual([])
  expect(html, where).not.toMatch(/href="javascript:/i)
}

describe.each(DATABASE_KINDS)('security on %s', (kind) => {
  let site: TestSite
  let boss: Browser
  const BOSS = basicOf('maintainer')
  const ROOT = basicOf('emergency')

  beforeAll(async () => {
    site = await startTestSite(kind)
    await addPrincipals(site, ['maintainer', 'member', 'emergency'])
    boss = await signedInBrowser(site.app, 'maintainer')
  })
  afterAll(async () => { await site.close() })

  describe('what people typed is text on every page, never markup', () => {
    beforeAll(async () => {
      const created = await site.app.inject({
        method: 'PUT',
        url: '/api/docs/hostile',
        headers: { authorization: basicOf('member') },
        payload: { title: `Quote ${HOSTILE}`, body: `Body text ${HOSTILE}\n\n## Heading ${HOSTILE}` },
      })
      expect(created.statusCode).toBe(201)
      const window = await site.app.inject({
        method: 'POST',
        url: '/api/maintenance/windows',
        headers: { authorization: BOSS },
        payload: { mode: 'concurrent', reason: `Window ${HOSTILE}`, startsAt: new Date(Date.now() + 3_600_000).toISOString(), endsAt: new Date(Date.now() + 7_200_000).toISOString() },
      })
      expect(window.statusCode).toBe(201)
      await switchTo(site.app, BOSS, 'concurrent', { reason: `Reason ${HOSTILE}` })
    })
    afterAll(async () => { await backToNormal(site.app, ROOT) })

    it.each([
      ['the document', '/docs/hostile'],
      ['its edit form', '/docs/hostile/edit'],
      ['the home page', '/'],
      ['the list', '/docs'],
      ['search results', '/search?q=quote'],
      ['a search for the text itself', `/search?q=${encodeURIComponent(HOSTILE)}`],
      ['the maintenance page', '/maintenance'],
      ['the control panel', '/manage'],
      ['the maintenance log', '/manage/log'],
      ['the sign-in form with a next path', `/login?next=${encodeURIComponent(`/docs?${HOSTILE}`)}`],
    ])('%s (%s), with the banner, as a manager', async (where, url) => {
      const response = await site.app.inject({ url, headers: { cookie: boss.cookie } })
      expect(response.statusCode, where).toBe(200)
      expectNothingInline(response, where)
      for (const marker of RAW_MARKERS) expect(response.body, where).not.toContain(marker)
      if (!url.startsWith('/login')) expectEscaped(response, where)
    })

    it('the JSON API keeps text as data, and search snippets are HTML-safe', async () => {
      const doc = await site.app.inject({ url: '/api/docs/hostile' })
      expect(doc.json().title).toBe(`Quote ${HOSTILE}`)
      const search = await site.app.inject({ url: '/api/search?q=quote' })
      const [hit] = search.json().hits as Array<{ snippet: string }>
      for (const marker of RAW_MARKERS) expect(hit!.snippet).not.toContain(marker)
      // PostgreSQL's snippet keeps a space after `<` (see the catalog), SQLite's does not.
      expect(hit!.snippet).toMatch(/&lt; ?script&gt;/)
    })

    it('the event stream carries the reason as JSON data, and the page script writes it as text only', async () => {
      const address = await site.app.listen({ port: 0, host: '127.0.0.1' })
      const controller = new AbortController()
      const response = await fetch(`${address}/api/maintenance/events`, { signal: controller.signal })
      const reader = response.body!.getReader()
      let text = ''
      while (!text.includes('\n\n')) text += new TextDecoder().decode((await reader.read()).value)
      controller.abort()
      const data = /^data: (.*)$/m.exec(text)![1]!
      expect(JSON.parse(data).reason).toBe(`Reason ${HOSTILE}`)
      // Every script of the site sets text, never markup, so data from the stream stays text.
      for (const file of readdirSync('public').filter((name) => name.endsWith('.js'))) {
        const script = readFileSync(path.join('public', file), 'utf8')
        expect(script, file).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|new Function/)
      }
    })
  })

  describe('refusals are visible to managers', () => {
    it('a refused mode change is in the control panel\'s recent changes and the log, with why', async () => {
      const ann = await signedInBrowser(site.app, 'member')
      const refused = await postForm(site.app, ann, '/manage/maintenance', { mode: 'exclusive', reason: 'members may not', expectedVersion: '1' })
      expect(refused.statusCode).toBe(403)
      for (const url of ['/manage', '/manage/log']) {
        const page = await site.app.inject({ url, headers: { cookie: boss.cookie } })
        expect(page.body, url).toMatch(/ann[\s\S]*refused[\s\S]*ann is not a manager/)
      }
    })
  })

  describe('answers to malformed requests', () => {
    it('a JSON body over the limit is 413 QUIESCE_TOO_LARGE and writes nothing', async () => {
      const response = await site.app.inject({
        method: 'PUT',
        url: '/api/docs/too-large',
        headers: { authorization: basicOf('member'), 'content-type': 'application/json' },
        payload: JSON.stringify({ title: 'Large', body: 'x'.repeat(1_100_000) }),
      })
      expect(response.statusCode).toBe(413)
      expect(response.json()).toMatchObject({ code: 'QUIESCE_TOO_LARGE' })
      expect(await documentRow(site.database, 'too-large')).toBeUndefined()
    })

    it('a form over the limit is 413 and does not pretend to keep text it never read', async () => {
      const ann = await signedInBrowser(site.app, 'member')
      const response = await postForm(site.app, ann, '/docs', { slug: 'too-large', title: 'Large', body: 'x'.repeat(1_100_000) })
      expect(response.statusCode).toBe(413)
      expect(response.body).toContain('QUIESCE_TOO_LARGE')
      expect(response.body).not.toMatch(/still below|exactly as you submitted/)
      expect(await documentRow(site.database, 'too-large')).toBeUndefined()
    })

    it('a document body within the request limit but over the document limit is a 400 naming the body', async () => {
      const response = await site.app.inject({ method: 'PUT', url: '/api/docs/too-long', headers: { authorization: basicOf('member') }, payload: { title: 'Long', body: 'x'.repeat(100_001) } })
      expect(response.statusCode).toBe(400)
      expect(response.json().fields).toEqual({ body: 'must be at most 100,000 characters' })
    })

    it.each([
      ['JSON that is not JSON', 'application/json', '{"title":', 400, 'QUIESCE_INVALID_INPUT'],
      ['an empty JSON body', 'application/json', '', 400, 'QUIESCE_INVALID_INPUT'],
      ['a content type the site does not read', 'application/xml', '<doc/>', 415, 'QUIESCE_UNSUPPORTED_MEDIA_TYPE'],
    ])('%s is %i %s', async (_what, contentType, payload, status, code) => {
      const response = await site.app.inject({ method: 'PUT', url: '/api/docs/malformed', headers: { authorization: basicOf('member'), 'content-type': contentType }, payload })
      expect(response.statusCode).toBe(status)
      expect(response.json()).toMatchObject({ statusCode: status, code })
    })

    it('a URL that is not valid is 400 QUIESCE_INVALID_INPUT, with the mode as on every response', async () => {
      const api = await site.app.inject({ url: '/api/docs/%E0%A4%A' })
      expect(api.statusCode).toBe(400)
      expect(api.json()).toMatchObject({ statusCode: 400, code: 'QUIESCE_INVALID_INPUT', error: 'Bad Request' })
      expect(api.headers['quiesce-mode']).toBe('normal')
      const page = await site.app.inject({ url: '/docs/%E0%A4%A', headers: { accept: 'text/html' } })
      expect(page.statusCode).toBe(400)
      expect(page.headers['content-type']).toBe('text/plain; charset=utf-8')
      expect(page.body).toContain('QUIESCE_INVALID_INPUT')
    })
  })

  describe('HTTP Basic and CSRF', () => {
    // A browser that has cached Basic credentials for the site sends them with any request to it,
    // a forged cross-site form post included: the credentials prove nothing about who made the form.
    it('Basic credentials carry no authority to a form without its CSRF token', async () => {
      const forged = await site.app.inject({
        method: 'POST',
        url: '/docs',
        headers: { authorization: BOSS, 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ slug: 'forged', title: 'Forged', body: 'made by another site' }).toString(),
      })
      expect(forged.statusCode).toBe(403)
      expect(forged.body).toContain('The form expired or did not come from this site')
      expect(await documentRow(site.database, 'forged')).toBeUndefined()
      // The API's POST routes can be reached by a form too; with a form body they need the token.
      const toApi = await site.app.inject({
        method: 'POST',
        url: '/api/maintenance/windows',
        headers: { authorization: BOSS, 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ mode: 'exclusive', reason: 'forged window', startsAt: '2099-01-01T00:00:00Z', endsAt: '2099-01-01T01:00:00Z' }).toString(),
      })
      expect(toApi.statusCode).toBe(403)
      expect(toApi.json()).toMatchObject({ code: 'QUIESCE_CSRF_INVALID' })
      expect(await site.database.writer.selectFrom('maintenance_window').selectAll().where('reason', '=', 'forged window').execute()).toEqual([])
    })

    // A page of another site can also make the browser send a POST with no body, or a text/plain
    // one, without a preflight (fetch with mode 'no-cors'); the remembered Basic credentials go with it.
    it('Basic credentials carry no authority to a request another site made, with or without a body', async () => {
      const tasksBefore = await site.database.writer.selectFrom('task').select('id').execute()
      const forgeries = [
        { headers: { 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'no-cors' } },
        { headers: { 'sec-fetch-site': 'same-site' } },
        { headers: { origin: 'https://evil.example' } },
        { headers: { origin: 'null' } },
        { headers: { 'content-type': 'text/plain' }, payload: '{}' },
      ]
      for (const forgery of forgeries) {
        const response = await site.app.inject({ method: 'POST', url: '/api/tasks/export', headers: { authorization: BOSS, ...forgery.headers }, payload: forgery.payload })
        expect(response.statusCode, JSON.stringify(forgery)).toBe(403)
        expect(response.json()).toMatchObject({ code: 'QUIESCE_CSRF_INVALID' })
      }
      expect(await site.database.writer.selectFrom('task').select('id').execute()).toEqual(tasksBefore)
      // The site's own pages and scripts without browser headers are the API as before.
      for (const headers of [{}, { 'sec-fetch-site': 'same-origin', origin: 'https://quiesce.example:8443' }, { 'sec-fetch-site': 'none' }]) {
        const response = await site.app.inject({ method: 'POST', url: '/api/tasks/export', headers: { authorization: BOSS, host: 'quiesce.example:8443', ...headers } })
        expect(response.statusCode, JSON.stringify(headers) + response.body).toBe(202)
        await site.app.inject({ method: 'POST', url: `${response.headers.location as string}/cancel`, headers: { authorization: BOSS } })
      }
    })

    it('Basic credentials with a JSON body are the API, no token needed', async () => {
      const response = await site.app.inject({
        method: 'PUT',
        url: '/api/docs/by-script',
        headers: { authorization: BOSS },
        payload: { title: 'By script', body: 'sent as JSON' },
      })
      expect(response.statusCode, response.body).toBeLessThan(300)
      expect(await documentRow(site.database, 'by-script')).toMatchObject({ title: 'By script' })
    })
  })

  describe('sign-in', () => {
    async function attempt (ip: string, username: string, password: string): Promise<{ status: number, body: string, ms: number }> {
      const page = await site.app.inject({ url: '/login', remoteAddress: ip })
      const started = performance.now()
      const response = await site.app.inject({
        method: 'POST',
        url: '/login',
        remoteAddress: ip,
        headers: { cookie: sessionCookieOf(page)!, 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ _csrf: csrfTokenIn(page.body), username, password }).toString(),
      })
      const main = response.body.slice(response.body.indexOf('<main'), response.body.indexOf('</main>'))
      const comparable = main.replaceAll(username, 'NAME').replace(/name="_csrf" value="[^"]*"/g, 'name="_csrf"')
      return { status: response.statusCode, body: comparable, ms: performance.now() - started }
    }

    it('a known name with a wrong password and an unknown name get the same answer in about the same time', async () => {
      const known: number[] = []
      const unknown: number[] = []
      let answer: string | undefined
      for (let round = 0; round < 8; round++) {
        // Alternating, from addresses of their own, so that load on the machine hits both alike.
        const a = await attempt(`10.77.${kind === 'sqlite' ? 1 : 2}.${round}`, 'ann', `wrong-${round}`)
        const b = await attempt(`10.78.${kind === 'sqlite' ? 1 : 2}.${round}`, `nobody-${round}`, `wrong-${round}`)
        expect([a.status, b.status]).toEqual([401, 401])
        expect(b.body).toBe(a.body)
        answer ??= a.body
        expect(a.body).toBe(answer)
        known.push(a.ms)
        unknown.push(b.ms)
      }
      const median = (values: number[]) => [...values].sort((x, y) => x - y)[Math.floor(values.length / 2)]!
      // Both verify one argon2 hash; a name looked up or not is microseconds of it.
      const ratio = median(unknown) / median(known)
      expect(ratio).toBeGreaterThan(0.5)
      expect(ratio).toBeLessThan(2)
    })
  })
})
