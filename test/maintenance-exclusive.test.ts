import type { LightMyRequestResponse } from 'fastify'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { formatTime } from '../app/web/view.js'
import { csrfTokenIn, documentRow, mainOf, postForm, sessionCookieOf, startTestSite, type Browser, type TestSite } from './helpers/app.js'
import { DATABASE_KINDS } from './helpers/databases.js'
import { backToNormal, fromNow, logCount, logRowsAfter, putState, readState, stateRow, switchTo } from './helpers/maintenance.js'
import { addPrincipals, basicOf, signedInBrowser } from './helpers/principals.js'

const BOSS = basicOf('maintainer')
const DEPUTY = basicOf('manager')
const ANN = basicOf('member')
const ROOT = basicOf('emergency')
const REASON = 'Moving to a new server'

describe.each(DATABASE_KINDS)('exclusive mode on %s', (kind) => {
  let site: TestSite
  /** Every call of the test routes' handlers: proof of whether a request got past the gate. */
  const handled: string[] = []
  let ann: Browser
  let deputy: Browser
  let boss: Browser
  let nextAddress = 1

  beforeAll(async () => {
    site = await startTestSite(kind, {
      configure (app) {
        app.get('/probe', async function probe (request) {
          handled.push(`GET /probe ${request.principal?.name ?? 'visitor'}`)
          return { reached: true }
        })
        app.get('/api/probe', async function probeApi (request) {
          handled.push(`GET /api/probe ${request.principal?.name ?? 'visitor'}`)
          return { reached: true }
        })
        app.put('/api/probe', async function probePut (request) {
          handled.push(`PUT /api/probe ${request.principal?.name ?? 'visitor'}`)
          return { reached: true }
        })
      },
    })
    await addPrincipals(site, ['maintainer', 'manager', 'member', 'emergency'])
    ann = await signedInBrowser(site.app, 'member')
    deputy = await signedInBrowser(site.app, 'manager')
    boss = await signedInBrowser(site.app, 'maintainer')
  })
  afterAll(async () => { await site.close() })
  beforeEach(() => { handled.length = 0 })

  function get (url: string, headers: Record<string, string> = {}) {
    return site.app.inject({ url, headers })
  }

  /** A fresh address per sign-in, so the login rate limit never trips. */
  function address (): string {
    return `10.0.1.${nextAddress++}`
  }

  /** Signs in through the form as a browser would, and answers the final response and cookie. */
  async function signInByForm (username: string, password: string) {
    const remoteAddress = address()
    const loginPage = await site.app.inject({ url: '/login', remoteAddress })
    expect(loginPage.statusCode).toBe(200)
    const anonymous = sessionCookieOf(loginPage)!
    const response = await site.app.inject({
      method: 'POST',
      url: '/login',
      remoteAddress,
      headers: { cookie: anonymous, 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ username, password, next: '/', _csrf: csrfTokenIn(loginPage.body) }).toString(),
    })
    return { response, cookie: sessionCookieOf(response) }
  }

  function expectMaintenancePage (response: LightMyRequestResponse, until: string | null): string {
    expect(response.statusCode).toBe(503)
    expect(response.headers['content-type']).toBe('text/html; charset=utf-8')
    expect(response.headers['quiesce-mode']).toBe('exclusive')
    const main = mainOf(response.body)
    expect(main).toContain('<p class="page-kicker">Exclusive maintenance</p>\n  <h1>Closed for maintenance</h1>')
    expect(main).toContain('<p class="lead">The site is closed to everyone except its maintainer and the emergency user.</p>')
    expect(main).toContain(`<dt>Why</dt><dd>${REASON}</dd>`)
    if (until !== null) {
      expect(main).toContain(`<dt>Expected end</dt><dd><time datetime="${until}" data-countdown>${formatTime(until)}</time></dd>`)
    }
    expectClosedFrame(response.body)
    // The page is the message: the banner, which would repeat it, stays hidden.
    expect(response.body).toMatch(/<div id="maintenance-banner" class="maintenance-banner mode-exclusive" [^>]*data-closed="true" data-state-in-page hidden>/)
    return main
  }

  /** Nothing on a page of the closed site leads to another 503: no Documents, no search, no home link. */
  function expectClosedFrame (html: string): void {
    const header = html.slice(html.indexOf('<header class="site-header">'), html.indexOf('</header>'))
    expect(header).toContain('<span class="brand">')
    expect(header).not.toContain('<a class="brand"')
    expect(header).not.toContain('href="/docs')
    expect(header).not.toContain('href="/manage"')
    expect(header).not.toContain('role="search"')
    expect(html).not.toContain('Changes cannot be saved')
    expect(html).not.toContain('reading and searching work')
  }

  const closedJson = {
    statusCode: 503,
    code: 'QUIESCE_EXCLUSIVE',
    error: 'Service Unavailable',
    message: `The site is closed for Exclusive maintenance: ${REASON}`,
  }

  describe('for everyone but the maintainer and the emergency user', () => {
    let until: string

    beforeAll(async () => {
      until = (await switchTo(site.app, BOSS, 'exclusive', { reason: REASON, until: fromNow(7200) })).until!
    })
    afterAll(async () => { await backToNormal(site.app, ROOT) })

    it('a visitor gets the maintenance page with reason, expected end and a Sign in link, before any handler runs', async () => {
      const response = await get('/probe')
      const main = expectMaintenancePage(response, until)
      // Signing in brings the person back to the page they asked for.
      expect(main).toContain('<a class="button" href="/login?next=%2Fprobe">Sign in</a>')
      expect(mainOf((await get('/')).body)).toContain('<a class="button" href="/login">Sign in</a>')
      expect(Number(response.headers['retry-after'])).toBeGreaterThanOrEqual(7198)
      expect(Number(response.headers['retry-after'])).toBeLessThanOrEqual(7200)
      expect(handled).toEqual([])
    })

    it('the sign-in page, open in exclusive mode, carries the banner with the words of exclusive mode and no way into the closed site', async () => {
      for (const headers of [{}, { cookie: ann.cookie }] as Array<Record<string, string>>) {
        const login = await get('/login', headers)
        expect(login.statusCode).toBe(200)
        expect(login.body).toContain('<div id="maintenance-banner" class="maintenance-banner mode-exclusive" role="status" aria-live="polite" data-mode="exclusive"')
        expect(login.body).toContain(`<p><strong>Exclusive maintenance</strong>: ${REASON}</p>`)
        expect(login.body).toContain(`Expected to end <time datetime="${until}" data-countdown>${formatTime(until)}</time>.`)
        expect(login.body).toContain('<p class="banner-write">The site is closed to everyone except its maintainer and the emergency user.</p>')
        expectClosedFrame(login.body)
      }
    })

    it('a visitor gets every page of the site as the maintenance page, and every API route as JSON', async () => {
      for (const url of ['/', '/docs', '/docs/anything', '/search?q=word', '/docs/new', '/manage']) {
        expectMaintenancePage(await get(url), until)
      }
      // Not even a form post to the control panel shows it.
      for (const url of ['/manage/maintenance', '/manage/users', '/docs']) {
        const response = await site.app.inject({ method: 'POST', url, headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'mode=normal' })
        expect(mainOf(response.body), url).not.toContain('Control panel')
        expectMaintenancePage(response, until)
      }
      for (const url of ['/api/probe', '/api/docs', '/api/search?q=word', '/api/maintenance/log', '/api/instances']) {
        const response = await get(url)
        expect(response.statusCode, url).toBe(503)
        expect(response.headers['content-type'], url).toBe('application/json; charset=utf-8')
        expect(response.json(), url).toEqual(closedJson)
      }
      expect(handled).toEqual([])
    })

    it('answers JSON to a client that asks for it with Accept: application/json', async () => {
      const response = await get('/probe', { accept: 'application/json' })
      expect(response.statusCode).toBe(503)
      expect(response.headers['retry-after']).toBeDefined()
      expect(response.json()).toEqual(closedJson)
      expect(handled).toEqual([])
    })

    it('a signed-in member gets the maintenance page, which says who they are; API writes get JSON; no handler runs', async () => {
      const page = await get('/probe', { cookie: ann.cookie })
      const main = expectMaintenancePage(page, until)
      expect(main).toContain('<p class="meta">You are signed in as ann. Only the maintainer and the emergency user can use the site now.</p>')
      expect(main).not.toContain('>Sign in</a>')

      // Refused before the body is read, so there is no text to give back: the maintenance
      // page, not a form that would claim to keep what was typed.
      for (const url of ['/docs', '/docs/anything', '/docs/anything/delete']) {
        const save = await postForm(site.app, ann, url, { title: 'Written while closed', body: 'text' })
        expect(mainOf(save.body), url).not.toContain('Not saved')
        expectMaintenancePage(save, until)
      }
      expect(await documentRow(site.database, 'written-while-closed')).toBeUndefined()

      for (const [method, url] of [['GET', '/api/probe'], ['PUT', '/api/probe'], ['PUT', '/api/docs/written-while-closed']] as const) {
        const response = await site.app.inject({ method, url, headers: { authorization: ANN }, payload: method === 'PUT' ? { title: 'T', body: 'B' } : undefined })
        expect(response.statusCode, `${method} ${url}`).toBe(503)
        expect(response.json()).toEqual(closedJson)
      }
      expect(await documentRow(site.database, 'written-while-closed')).toBeUndefined()
      expect(handled).toEqual([])
    })

    it('another manager is kept out of the site and the control panel, but a state change meets the rules: 403 naming the maintainer, logged', async () => {
      expectMaintenancePage(await get('/manage', { cookie: deputy.cookie }), until)
      const panelPost = await postForm(site.app, deputy, '/manage/maintenance', { mode: 'normal', reason: '', until: '', expectedVersion: '1' })
      expectMaintenancePage(panelPost, until)
      expectMaintenancePage(await get('/probe', { cookie: deputy.cookie }), until)

      const before = await stateRow(site.database)
      const logged = await logCount(site.database)
      const change = await putState(site.app, DEPUTY, { mode: 'normal', expectedVersion: before.version })
      expect(change.statusCode).toBe(403)
      expect(change.headers['quiesce-mode']).toBe('exclusive')
      expect(change.json()).toEqual({
        statusCode: 403,
        code: 'QUIESCE_NOT_MAINTAINER',
        error: 'Forbidden',
        message: 'Only the maintainer (boss) or the emergency user may change maintenance now',
        maintainer: 'boss',
      })
      const member = await putState(site.app, ANN, { mode: 'normal', expectedVersion: before.version })
      expect(member.statusCode).toBe(403)
      expect(member.json()).toMatchObject({ code: 'QUIESCE_NOT_MANAGER' })
      const visitor = await putState(site.app, undefined, { mode: 'normal', expectedVersion: before.version })
      expect(visitor.statusCode).toBe(401)
      expect(visitor.json()).toMatchObject({ code: 'QUIESCE_UNAUTHORIZED' })

      expect(await stateRow(site.database)).toEqual(before)
      expect((await logRowsAfter(site.database, logged)).map((row) => [row.actor, row.channel, row.from_mode, row.to_mode, row.outcome, row.detail])).toEqual([
        ['deputy', 'api', 'exclusive', 'normal', 'refused', 'the maintainer is boss'],
        ['ann', 'api', 'exclusive', 'normal', 'refused', 'ann is not a manager'],
      ])
      expect(handled).toEqual([])
    })

    it('without an expected end the page says so, and Retry-After is the configured default', async () => {
      const { version } = await readState(site.app)
      expect((await putState(site.app, BOSS, { mode: 'exclusive', reason: REASON, until: null, expectedVersion: version })).statusCode).toBe(200)
      const response = await get('/probe')
      const main = expectMaintenancePage(response, null)
      expect(main).toContain('<dt>Expected end</dt><dd>not given; please try again in about 5 minutes</dd>')
      expect(response.headers['retry-after']).toBe('300')
      until = (await switchTo(site.app, BOSS, 'exclusive', { reason: REASON, until: fromNow(7200) })).until!
    })
  })

  describe('the maintainer and the emergency user', () => {
    beforeAll(async () => { await switchTo(site.app, BOSS, 'exclusive', { reason: REASON }) })
    afterAll(async () => { await backToNormal(site.app, ROOT) })

    it('the maintainer gets through to pages, the control panel and the API, and can write', async () => {
      const probe = await get('/probe', { cookie: boss.cookie })
      expect(probe.statusCode).toBe(200)
      expect(probe.headers['quiesce-mode']).toBe('exclusive')
      expect(probe.json()).toEqual({ reached: true })

      const home = await get('/', { cookie: boss.cookie })
      expect(home.statusCode).toBe(200)
      expect(home.body).toContain('<p class="banner-write">You are the maintainer: you can use the site and your changes are saved; it is closed to everyone else.</p>')
      expect(home.body).toContain('<a class="brand" href="/">')
      expect(home.body).toContain('<a href="/docs">Documents</a>')
      expect((await get('/manage', { cookie: boss.cookie })).statusCode).toBe(200)

      const saved = await postForm(site.app, boss, '/docs', { title: 'Migration notes', body: 'Written by the maintainer.' })
      expect(saved.statusCode).toBe(303)
      expect(saved.headers.location).toBe('/docs/migration-notes?saved=1')
      expect(await documentRow(site.database, 'migration-notes')).toMatchObject({ title: 'Migration notes', created_by: 'boss' })

      const put = await site.app.inject({ method: 'PUT', url: '/api/docs/maintainer-api', headers: { authorization: BOSS }, payload: { title: 'By API', body: 'x' } })
      expect(put.statusCode).toBe(201)
      expect(await documentRow(site.database, 'maintainer-api')).toMatchObject({ title: 'By API', created_by: 'boss' })
      expect(handled).toEqual(['GET /probe boss'])
    })

    it('the emergency user gets through with Basic credentials and by signing in, and can write', async () => {
      const probe = await get('/api/probe', { authorization: ROOT })
      expect(probe.statusCode).toBe(200)
      const put = await site.app.inject({ method: 'PUT', url: '/api/docs/emergency-api', headers: { authorization: ROOT }, payload: { title: 'By root', body: 'x' } })
      expect(put.statusCode).toBe(201)
      expect(await documentRow(site.database, 'emergency-api')).toMatchObject({ title: 'By root', created_by: 'root' })

      const { response, cookie } = await signInByForm('root', 'root-emergency-pw')
      expect(response.statusCode).toBe(303)
      const home = await get('/', { cookie: cookie! })
      expect(home.statusCode).toBe(200)
      expect(home.body).toContain('<strong data-testid="signed-in-user">root</strong>')
      expect(home.body).toContain('<p class="banner-write">You are the emergency user: you can use the site and your changes are saved; it is closed to everyone else.</p>')
      expect(handled).toEqual(['GET /api/probe root'])
      // Still boss's maintenance: getting through is not taking over.
      expect(await stateRow(site.database)).toMatchObject({ mode: 'exclusive', maintainer: 'boss' })
    })
  })

  describe.each(['normal', 'concurrent', 'exclusive'] as const)('always-open routes in %s mode', (mode) => {
    beforeAll(async () => { if (mode !== 'normal') await switchTo(site.app, BOSS, mode, { reason: REASON }) })
    afterAll(async () => { await backToNormal(site.app, ROOT) })

    it('sign-in page, static files, health, the state and the maintenance page answer 200 to visitors, members and other managers', async () => {
      for (const [who, headers] of [['visitor', {}], ['member', { cookie: ann.cookie }], ['other manager', { cookie: deputy.cookie }]] as const) {
        for (const url of ['/login', '/static/quiesce.css', '/static/quiesce.js', '/healthz', '/api/maintenance', '/maintenance']) {
          const response = await get(url, headers)
          expect(response.statusCode, `${who} ${url}`).toBe(200)
          expect(response.headers['quiesce-mode'], `${who} ${url}`).toBe(mode)
        }
      }
      const maintenancePage = mainOf((await get('/maintenance')).body)
      expect(maintenancePage).toContain(mode === 'normal' ? '<h1>The site is open</h1>' : mode === 'exclusive' ? '<h1>Closed for maintenance</h1>' : '<h1>Concurrent (read-only) maintenance</h1>')
      expect((await get('/healthz')).json()).toMatchObject({ status: 'ok', mode })
      expect((await get('/api/maintenance')).json()).toMatchObject({ mode })
    })

    it('a member signs in and out; in exclusive mode the rest of the site still shows the maintenance page', async () => {
      const { response, cookie } = await signInByForm('ann', 'ann-password')
      expect(response.statusCode).toBe(303)
      expect(response.headers.location).toBe('/')
      expect(response.headers['quiesce-mode']).toBe(mode)

      const home = await get('/probe', { cookie: cookie!, accept: 'text/html' })
      if (mode === 'exclusive') {
        expect(home.statusCode).toBe(503)
        expect(mainOf(home.body)).toContain('You are signed in as ann.')
      } else {
        expect(home.statusCode).toBe(200)
      }

      const loginPage = await get('/login', { cookie: cookie! })
      const logout = await site.app.inject({
        method: 'POST',
        url: '/logout',
        headers: { cookie: cookie!, 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ _csrf: csrfTokenIn(loginPage.body) }).toString(),
      })
      expect(logout.statusCode).toBe(303)
      expect(logout.headers.location).toBe('/')
      const afterwards = await get('/api/maintenance', { cookie: cookie! })
      expect(afterwards.statusCode).toBe(200)
      expect((await get('/probe', { cookie: cookie!, accept: 'application/json' })).json()).toEqual(mode === 'exclusive' ? closedJson : { reached: true })
      expect(handled).toEqual(mode === 'exclusive' ? [] : ['GET /probe ann', 'GET /probe visitor'])
    })

    it('a wrong password is answered by the sign-in page (401), not the maintenance page', async () => {
      const { response } = await signInByForm('ann', 'not-the-password')
      expect(response.statusCode).toBe(401)
      expect(response.headers['quiesce-mode']).toBe(mode)
      expect(mainOf(response.body)).toContain('<p class="notice error" role="alert">Wrong user name or password.</p>')
    })
  })
})
