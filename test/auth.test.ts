import { readFile, stat } from 'node:fs/promises'
import type { LightMyRequestResponse } from 'fastify'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { nameProblem, readAccessFile, writeEmergencyUser } from '../app/auth/access-file.js'
import { hashPassword, passwordProblem, verifyPassword } from '../app/auth/passwords.js'
import { safeNext } from '../app/auth/routes.js'
import { DatabaseSessionStore } from '../app/auth/session-store.js'
import { basicAuth, csrfTokenIn, documentRow, mainOf, sessionCookieOf, startTestSite, type TestSite } from './helpers/app.js'
import { DATABASE_KINDS } from './helpers/databases.js'
import { addPrincipals, basicOf } from './helpers/principals.js'

const FORM = 'application/x-www-form-urlencoded'
const ARGON2ID_PHC = /^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/

describe('safeNext', () => {
  it.each([
    ['/docs/oak?x=1#top', '/docs/oak?x=1#top'],
    ['/', '/'],
    ['/docs/a/../b', '/docs/b'],
  ])('keeps the same-site path %j', (next, expected) => {
    expect(safeNext(next)).toBe(expected)
  })

  it.each([
    '//evil.example/',
    '/\\evil.example',
    '/\t/evil.example',
    '/\n/evil.example',
    '\\\\evil.example',
    'https://evil.example/',
    'javascript:alert(1)',
    'docs/relative',
    '',
    undefined,
    ['/docs'],
  ])('sends %j home instead', (next) => {
    expect(safeNext(next)).toBe('/')
  })
})

describe('passwords and the access file', () => {
  it('hashes with argon2id into a PHC string and verifies', async () => {
    const hash = await hashPassword('correct horse')
    expect(hash).toMatch(ARGON2ID_PHC)
    expect(await verifyPassword(hash, 'correct horse')).toBe(true)
    expect(await verifyPassword(hash, 'wrong horse')).toBe(false)
    expect(await verifyPassword('not a hash', 'correct horse')).toBe(false)
  })

  it('checks password length', () => {
    expect(passwordProblem('1234567')).toBe('must be at least 8 characters')
    expect(passwordProblem('12345678')).toBeUndefined()
    expect(passwordProblem('x'.repeat(1025))).toBe('must be at most 1024 characters')
  })

  it('checks emergency user names', () => {
    expect(nameProblem('root')).toBeUndefined()
    expect(nameProblem('r')).toBeDefined()
    expect(nameProblem('Root')).toBeDefined()
    expect(nameProblem('ro:ot')).toBeDefined()
  })
})

describe.each(DATABASE_KINDS)('signing in on %s', (kind) => {
  let site: TestSite
  let ipCounter = 0
  /** Each test signs in from its own address, so the login rate limit of one test never trips another. */
  function freshIp (): string {
    ipCounter++
    return `10.${kind === 'sqlite' ? 1 : 2}.${Math.floor(ipCounter / 250)}.${ipCounter % 250 + 1}`
  }

  beforeAll(async () => {
    site = await startTestSite(kind)
    await addPrincipals(site, ['member', 'manager'])
  })
  afterAll(async () => { await site.close() })

  async function loginPage (ip: string, url = '/login') {
    const page = await site.app.inject({ url, remoteAddress: ip })
    expect(page.statusCode).toBe(200)
    return { page, cookie: sessionCookieOf(page)!, csrf: csrfTokenIn(page.body) }
  }

  async function postLogin (fields: Record<string, string>, options: { ip?: string, headers?: Record<string, string> } = {}) {
    const ip = options.ip ?? freshIp()
    const { cookie, csrf } = await loginPage(ip)
    const response = await site.app.inject({
      method: 'POST',
      url: '/login',
      remoteAddress: ip,
      headers: { cookie, 'content-type': FORM, ...options.headers },
      payload: new URLSearchParams({ _csrf: csrf, ...fields }).toString(),
    })
    return { response, anonymousCookie: cookie }
  }

  function sidOf (cookie: string): string {
    return decodeURIComponent(cookie.slice('quiesce.sid='.length)).split('.')[0]!
  }

  async function sessionRow (cookie: string) {
    return site.database.writer.selectFrom('session').selectAll().where('sid', '=', sidOf(cookie)).executeTakeFirst()
  }

  /** The cookie's session, if it has one, has nobody signed in. */
  async function expectNotSignedIn (cookie: string) {
    const row = await sessionRow(cookie)
    if (row !== undefined) expect(JSON.parse(row.data).principal).toBeUndefined()
    const page = await site.app.inject({ url: '/docs/new', headers: { cookie } })
    expect(page.statusCode).toBe(401)
  }

  function withoutTokens (html: string): string {
    return html.replace(/name="_csrf" value="[^"]+"/g, 'name="_csrf" value=""')
  }

  function signedInAs (response: LightMyRequestResponse): string | undefined {
    return /<strong data-testid="signed-in-user">([^<]*)<\/strong><span class="role"> · ([a-z]+)<\/span>/.exec(response.body)?.slice(1).join(' · ')
  }

  it('GET /login shows the form with a CSRF token and the next path', async () => {
    const { page } = await loginPage(freshIp(), '/login?next=%2Fdocs%2Foak')
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8')
    const main = mainOf(page.body)
    expect(main).toContain('<form class="login-form" method="post" action="/login">')
    expect(main).toContain('<input type="hidden" name="next" value="/docs/oak">')
    expect(main).toContain('<input id="username" name="username" type="text" autocomplete="username" autocapitalize="none" required value="">')
    expect(main).not.toContain('role="alert"')
  })

  it('GET /login does not offer another site as next', async () => {
    const { page } = await loginPage(freshIp(), `/login?next=${encodeURIComponent('//evil.example/')}`)
    expect(mainOf(page.body)).toContain('<input type="hidden" name="next" value="/">')
  })

  it('a good password signs in: 303, an HttpOnly SameSite=Lax cookie, a session row, a new session id', async () => {
    const { response, anonymousCookie } = await postLogin({ username: 'ann', password: 'ann-password' })
    expect(response.statusCode).toBe(303)
    expect(response.headers.location).toBe('/')
    const setCookie = String(response.headers['set-cookie'])
    expect(setCookie).toMatch(/^quiesce\.sid=[^;]+;/)
    expect(setCookie).toContain('HttpOnly')
    expect(setCookie).toContain('SameSite=Lax')
    expect(setCookie).toContain('Path=/')
    expect(setCookie).toMatch(/Expires=/)
    const cookie = sessionCookieOf(response)!
    expect(sidOf(cookie)).not.toBe(sidOf(anonymousCookie))

    const row = await sessionRow(cookie)
    expect(row).toBeDefined()
    expect(JSON.parse(row!.data).principal).toEqual({ name: 'ann', role: 'member' })
    const lifetime = Date.parse(row!.expires_at) - Date.now()
    expect(lifetime).toBeGreaterThan(7.9 * 3600_000)
    expect(lifetime).toBeLessThanOrEqual(8 * 3600_000)
    // The anonymous session is gone (no session fixation): its cookie signs nobody in.
    expect(await sessionRow(anonymousCookie)).toBeUndefined()
    expect(signedInAs(await site.app.inject({ url: '/', headers: { cookie: anonymousCookie } }))).toBeUndefined()

    const home = await site.app.inject({ url: '/', headers: { cookie } })
    expect(signedInAs(home)).toBe('ann · member')
  })

  it('a user name with spaces around it still signs in', async () => {
    const { response } = await postLogin({ username: '  ann ', password: 'ann-password' })
    expect(response.statusCode).toBe(303)
  })

  it('next sends the person back where they were, on this site only', async () => {
    const back = await postLogin({ username: 'ann', password: 'ann-password', next: '/docs/new' })
    expect(back.response.headers.location).toBe('/docs/new')
    for (const next of ['//evil.example/', 'https://evil.example/', '/\\evil.example', '/\t/evil.example']) {
      const away = await postLogin({ username: 'ann', password: 'ann-password', next })
      expect(away.response.statusCode).toBe(303)
      expect(away.response.headers.location).toBe('/')
    }
  })

  it('without a next, a manager lands on the control panel and anyone else at home; a next given wins', async () => {
    const { page } = await loginPage(freshIp())
    expect(mainOf(page.body)).toContain('<input type="hidden" name="next" value="">')
    for (const next of [undefined, '']) {
      const fields: Record<string, string> = next === undefined ? {} : { next }
      expect((await postLogin({ username: 'deputy', password: 'deputy-password', ...fields })).response.headers.location).toBe('/manage')
      expect((await postLogin({ username: 'ann', password: 'ann-password', ...fields })).response.headers.location).toBe('/')
    }
    expect((await postLogin({ username: 'deputy', password: 'deputy-password', next: '/docs/oak?x=1#top' })).response.headers.location).toBe('/docs/oak?x=1#top')
    expect((await postLogin({ username: 'deputy', password: 'deputy-password', next: '/' })).response.headers.location).toBe('/')
    expect((await postLogin({ username: 'deputy', password: 'deputy-password', next: '//evil.example/' })).response.headers.location).toBe('/')
  })

  it('the header\'s Sign in link brings the person back to the page they were on', async () => {
    const signInLink = (html: string) => /<div class="who">\s*<a href="([^"]*)">Sign in<\/a>/.exec(html)?.[1]
    expect(signInLink((await site.app.inject('/docs?page=2')).body)).toBe('/login?next=%2Fdocs%3Fpage%3D2')
    expect(signInLink((await site.app.inject('/search?q=oak')).body)).toBe('/login?next=%2Fsearch%3Fq%3Doak')
    // From the home page, none: a manager then lands on the control panel.
    expect(signInLink((await site.app.inject('/')).body)).toBe('/login')
    // On the sign-in page, the link keeps the page's own next instead of pointing at itself.
    expect(signInLink((await site.app.inject('/login?next=%2Fdocs%2Foak')).body)).toBe('/login?next=%2Fdocs%2Foak')

    // A manager whose session ended on the control panel signs in from its 401 page and is back there.
    const panel = await site.app.inject('/manage')
    expect(panel.statusCode).toBe(401)
    expect(mainOf(panel.body)).toContain('<a class="button" href="/login?next=%2Fmanage">Sign in</a>')
    const ip = freshIp()
    const { cookie, csrf, page } = await loginPage(ip, '/login?next=%2Fmanage')
    expect(mainOf(page.body)).toContain('<input type="hidden" name="next" value="/manage">')
    const response = await site.app.inject({
      method: 'POST',
      url: '/login',
      remoteAddress: ip,
      headers: { cookie, 'content-type': FORM },
      payload: new URLSearchParams({ _csrf: csrf, username: 'deputy', password: 'deputy-password', next: '/manage' }).toString(),
    })
    expect(response.headers.location).toBe('/manage')
  })

  it('a wrong password is a 401 page that keeps the user name', async () => {
    const before = await site.database.writer.selectFrom('session').select('sid').execute()
    const { response, anonymousCookie } = await postLogin({ username: 'ann', password: 'not-her-password', next: '/docs/new' })
    expect(response.statusCode).toBe(401)
    expect(response.headers['content-type']).toBe('text/html; charset=utf-8')
    const main = mainOf(response.body)
    expect(main).toContain('<p class="notice error" role="alert">Wrong user name or password.</p>')
    expect(main).toContain('required value="ann">')
    expect(main).toContain('<input type="hidden" name="next" value="/docs/new">')
    expect(main).not.toContain('not-her-password')
    expect(signedInAs(response)).toBeUndefined()
    // No signed-in session was made.
    const after = await site.database.writer.selectFrom('session').selectAll().execute()
    const added = after.filter((row) => !before.some((old) => old.sid === row.sid))
    for (const row of added) expect(JSON.parse(row.data).principal).toBeUndefined()
    await expectNotSignedIn(sessionCookieOf(response) ?? anonymousCookie)
  })

  it('an unknown user gets exactly the same answer as a wrong password', async () => {
    const unknown = await postLogin({ username: 'nobody-here', password: 'whatever-password' })
    expect(unknown.response.statusCode).toBe(401)
    expect(mainOf(unknown.response.body)).toContain('<p class="notice error" role="alert">Wrong user name or password.</p>')
    expect(mainOf(unknown.response.body)).toContain('required value="nobody-here">')
    const wrongPassword = await postLogin({ username: 'ann', password: 'whatever-password' })
    expect(wrongPassword.response.statusCode).toBe(401)
    expect(withoutTokens(wrongPassword.response.body).replace('value="ann"', 'value="nobody-here"'))
      .toBe(withoutTokens(unknown.response.body))
  })

  it('a user name with HTML in it is kept, escaped', async () => {
    const { response } = await postLogin({ username: '"><script>x</script>', password: 'whatever-password' })
    expect(response.statusCode).toBe(401)
    expect(response.body).not.toContain('<script>x')
    expect(mainOf(response.body)).toContain('value="&quot;&gt;&lt;script&gt;x&lt;/script&gt;">')
  })

  it('POST /login without a CSRF token is 403 QUIESCE_CSRF_INVALID and signs nobody in', async () => {
    const ip = freshIp()
    const { cookie } = await loginPage(ip)
    const response = await site.app.inject({
      method: 'POST',
      url: '/login',
      remoteAddress: ip,
      headers: { cookie, 'content-type': FORM },
      payload: new URLSearchParams({ username: 'ann', password: 'ann-password' }).toString(),
    })
    expect(response.statusCode).toBe(403)
    expect(mainOf(response.body)).toContain('<code>QUIESCE_CSRF_INVALID</code>')
    expect(signedInAs(response)).toBeUndefined()
    await expectNotSignedIn(sessionCookieOf(response) ?? cookie)

    const json = await site.app.inject({
      method: 'POST',
      url: '/login',
      remoteAddress: ip,
      headers: { 'content-type': FORM, accept: 'application/json' },
      payload: new URLSearchParams({ username: 'ann', password: 'ann-password' }).toString(),
    })
    expect(json.json()).toEqual({
      statusCode: 403,
      code: 'QUIESCE_CSRF_INVALID',
      error: 'Forbidden',
      message: 'The form expired or did not come from this site; reload the page and try again',
    })
  })

  it('logout destroys the session row and the cookie signs nobody in afterwards', async () => {
    const ip = freshIp()
    const { response } = await postLogin({ username: 'ann', password: 'ann-password' }, { ip })
    const cookie = sessionCookieOf(response)!
    expect(await sessionRow(cookie)).toBeDefined()
    const page = await site.app.inject({ url: '/', headers: { cookie } })
    const logoutToken = csrfTokenIn(page.body)
    const current = sessionCookieOf(page) ?? cookie

    const refused = await site.app.inject({ method: 'POST', url: '/logout', headers: { cookie: current, 'content-type': FORM }, payload: '' })
    expect(refused.statusCode).toBe(403)
    expect(mainOf(refused.body)).toContain('<code>QUIESCE_CSRF_INVALID</code>')
    expect(await sessionRow(current)).toBeDefined()

    const loggedOut = await site.app.inject({
      method: 'POST',
      url: '/logout',
      headers: { cookie: current, 'content-type': FORM },
      payload: new URLSearchParams({ _csrf: logoutToken }).toString(),
    })
    expect(loggedOut.statusCode).toBe(303)
    expect(loggedOut.headers.location).toBe('/')
    expect(await sessionRow(current)).toBeUndefined()
    const after = await site.app.inject({ url: '/docs/new', headers: { cookie: current } })
    expect(after.statusCode).toBe(401)
  })

  it('an expired session signs nobody in, and prune() deletes it', async () => {
    const { response } = await postLogin({ username: 'ann', password: 'ann-password' })
    const cookie = sessionCookieOf(response)!
    await site.database.writer.updateTable('session').set({ expires_at: new Date(Date.now() - 1000).toISOString() }).where('sid', '=', sidOf(cookie)).execute()
    expect((await site.app.inject({ url: '/docs/new', headers: { cookie } })).statusCode).toBe(401)
    const pruned = await new DatabaseSessionStore(site.database.writer).prune()
    expect(pruned).toBeGreaterThanOrEqual(1)
    expect(await sessionRow(cookie)).toBeUndefined()
  })

  it('the 11th sign-in attempt within a minute from one address is 429 QUIESCE_RATE_LIMITED', async () => {
    const ip = freshIp()
    for (let attempt = 1; attempt <= 10; attempt++) {
      const { response } = await postLogin({ username: 'ann', password: `wrong-${attempt}` }, { ip })
      expect(response.statusCode).toBe(401)
    }
    const { response, anonymousCookie } = await postLogin({ username: 'ann', password: 'ann-password' }, { ip, headers: { accept: 'application/json' } })
    expect(response.statusCode).toBe(429)
    expect(response.json()).toEqual({
      statusCode: 429,
      code: 'QUIESCE_RATE_LIMITED',
      error: 'Too Many Requests',
      message: expect.stringMatching(/^Too many attempts; try again in \d+ seconds$/),
    })
    expect(Number(response.headers['retry-after'])).toBeGreaterThan(0)
    expect(Number(response.headers['retry-after'])).toBeLessThanOrEqual(60)
    await expectNotSignedIn(sessionCookieOf(response) ?? anonymousCookie)

    const page = await postLogin({ username: 'ann', password: 'ann-password' }, { ip })
    expect(page.response.statusCode).toBe(429)
    expect(mainOf(page.response.body)).toContain('<code>QUIESCE_RATE_LIMITED</code>')

    // Another address is not affected, and the login page itself is not limited.
    expect((await postLogin({ username: 'ann', password: 'ann-password' })).response.statusCode).toBe(303)
    expect((await site.app.inject({ url: '/login', remoteAddress: ip })).statusCode).toBe(200)
  })

  it('passwords are stored as argon2id PHC strings', async () => {
    const rows = await site.database.writer.selectFrom('app_user').select(['username', 'password_hash']).execute()
    expect(rows.length).toBeGreaterThanOrEqual(2)
    for (const row of rows) {
      expect(row.password_hash).toMatch(ARGON2ID_PHC)
      expect(row.password_hash).not.toContain(`${row.username}-password`)
    }
  })

  describe('HTTP Basic credentials for the API', () => {
    it('good credentials are accepted, also for writes', async () => {
      const read = await site.app.inject({ url: '/api/docs', headers: { authorization: basicOf('member') } })
      expect(read.statusCode).toBe(200)
      const write = await site.app.inject({ method: 'PUT', url: '/api/docs/basic-write', headers: { authorization: basicOf('member') }, payload: { title: 'Basic', body: '' } })
      expect(write.statusCode).toBe(201)
      expect(await documentRow(site.database, 'basic-write')).toMatchObject({ created_by: 'ann' })
    })

    it.each([
      ['a wrong password', basicAuth('ann', 'wrong-password')],
      ['an unknown user', basicAuth('nobody-at-all', 'ann-password')],
      ['no colon', `Basic ${Buffer.from('annpassword').toString('base64')}`],
      ['an empty user name', basicAuth('', 'ann-password')],
    ])('%s is 401 QUIESCE_UNAUTHORIZED', async (_case, authorization) => {
      const response = await site.app.inject({ url: '/api/docs', headers: { authorization } })
      expect(response.statusCode).toBe(401)
      expect(response.json()).toEqual({ statusCode: 401, code: 'QUIESCE_UNAUTHORIZED', error: 'Unauthorized', message: 'Sign in to do this' })
    })

    it('an HTML page with bad credentials is a 401 page', async () => {
      const response = await site.app.inject({ url: '/', headers: { authorization: basicAuth('ann', 'wrong-password') } })
      expect(response.statusCode).toBe(401)
      expect(mainOf(response.body)).toContain('<code>QUIESCE_UNAUTHORIZED</code>')
    })
  })

  describe('the emergency user', () => {
    beforeAll(async () => {
      await writeEmergencyUser(site.config.accessFile, 'root', await hashPassword('root-emergency-pw'))
    })

    it('is written to an access file of mode 0600 as name:argon2id-hash', async () => {
      expect((await stat(site.config.accessFile)).mode & 0o777).toBe(0o600)
      const entries = await readAccessFile(site.config.accessFile)
      expect(entries).toHaveLength(1)
      expect(entries[0]!.name).toBe('root')
      expect(entries[0]!.hash).toMatch(ARGON2ID_PHC)
      expect(await readFile(site.config.accessFile, 'utf8')).toMatch(/^# .*\nroot:\$argon2id\$[^\n]+\n$/)
    })

    it('signs in through the form, and every page shows the emergency role', async () => {
      const { response } = await postLogin({ username: 'root', password: 'root-emergency-pw' })
      expect(response.statusCode).toBe(303)
      const cookie = sessionCookieOf(response)!
      expect(JSON.parse((await sessionRow(cookie))!.data).principal).toEqual({ name: 'root', role: 'emergency' })
      const home = await site.app.inject({ url: '/', headers: { cookie } })
      expect(signedInAs(home)).toBe('root · emergency')
      expect(home.body).toContain('<a href="/manage">Manage</a>')
    })

    it('a wrong emergency password is refused like any other', async () => {
      const { response } = await postLogin({ username: 'root', password: 'not-the-emergency-pw' })
      expect(response.statusCode).toBe(401)
      expect(mainOf(response.body)).toContain('Wrong user name or password.')
    })

    it('uses Basic credentials for the API', async () => {
      const response = await site.app.inject({ method: 'PUT', url: '/api/docs/by-emergency', headers: { authorization: basicOf('emergency') }, payload: { title: 'By root', body: '' } })
      expect(response.statusCode).toBe(201)
      expect(await documentRow(site.database, 'by-emergency')).toMatchObject({ created_by: 'root' })
    })
  })

  it('a manager sees the Manage link; a member does not', async () => {
    const manager = sessionCookieOf((await postLogin({ username: 'deputy', password: 'deputy-password' })).response)!
    const member = sessionCookieOf((await postLogin({ username: 'ann', password: 'ann-password' })).response)!
    expect(signedInAs(await site.app.inject({ url: '/', headers: { cookie: manager } }))).toBe('deputy · manager')
    expect((await site.app.inject({ url: '/', headers: { cookie: manager } })).body).toContain('<a href="/manage">Manage</a>')
    expect((await site.app.inject({ url: '/', headers: { cookie: member } })).body).not.toContain('href="/manage"')
  })
})

describe.each(DATABASE_KINDS)('signing in when the users table cannot be read, on %s', (kind) => {
  let site: TestSite

  beforeAll(async () => {
    site = await startTestSite(kind)
    await addPrincipals(site, ['member'])
    await writeEmergencyUser(site.config.accessFile, 'root', await hashPassword('root-emergency-pw'))
    await sql`alter table app_user rename to app_user_gone`.execute(site.database.writer)
  })
  afterAll(async () => {
    await sql`alter table app_user_gone rename to app_user`.execute(site.database.writer)
    await site.close()
  })

  async function postLogin (username: string, password: string) {
    const page = await site.app.inject('/login')
    return site.app.inject({
      method: 'POST',
      url: '/login',
      headers: { cookie: sessionCookieOf(page)!, 'content-type': FORM },
      payload: new URLSearchParams({ _csrf: csrfTokenIn(page.body), username, password }).toString(),
    })
  }

  it('the emergency user still signs in', async () => {
    const response = await postLogin('root', 'root-emergency-pw')
    expect(response.statusCode).toBe(303)
    const cookie = sessionCookieOf(response)!
    const home = await site.app.inject({ url: '/', headers: { cookie } })
    expect(home.body).toContain('<strong data-testid="signed-in-user">root</strong><span class="role"> · emergency</span>')
  })

  it('a normal user gets a 503 page saying sign-in is unavailable, the user name kept', async () => {
    const response = await postLogin('ann', 'ann-password')
    expect(response.statusCode).toBe(503)
    expect(response.headers['content-type']).toBe('text/html; charset=utf-8')
    const main = mainOf(response.body)
    expect(main).toContain('<p class="notice error" role="alert">Sign-in is unavailable right now: the user list cannot be read. The emergency user can still sign in.</p>')
    expect(main).toContain('required value="ann">')
    expect(sessionCookieOf(response)).toBeDefined()
    expect(response.body).not.toContain('data-testid="signed-in-user"')
  })
})
