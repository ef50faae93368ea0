import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../app/app.js'
import { resetTokenHash, RESET_LIFETIME_MS } from '../app/auth/password-resets.js'
import { DatabaseSessionStore } from '../app/auth/session-store.js'
import { openDatabase } from '../app/db/database.js'
import { addUser, basicAuth, csrfTokenIn, mainOf, postForm, sessionCookieOf, signIn, startTestSite, testConfig, type Browser, type TestSite } from './helpers/app.js'
import { DATABASE_KINDS } from './helpers/databases.js'
import { backToNormal, switchTo } from './helpers/maintenance.js'
import { addPrincipals, basicOf, signedInBrowser } from './helpers/principals.js'
import { deferred } from './helpers/tasks.js'

const ROOT = basicOf('emergency')
const FORM = 'application/x-www-form-urlencoded'

describe.each(DATABASE_KINDS)('managing users on %s', (kind) => {
  let site: TestSite
  let boss: Browser
  /** While set, the next two commits wait for each other before they begin (two managers acting at once). */
  let barrier: { arrived: number, both: { promise: Promise<void>, resolve: () => void } } | null = null

  beforeAll(async () => {
    site = await startTestSite(kind, {
      configure (app) {
        app.unitOfWork.onBeforeCommit(async function twoAtOnce () {
          if (barrier === null) return
          barrier.arrived++
          if (barrier.arrived === 2) barrier.both.resolve()
          await barrier.both.promise
        })
      },
    })
    await addPrincipals(site, ['maintainer', 'emergency'])
    boss = await signedInBrowser(site.app, 'maintainer')
  })
  afterAll(async () => { await site.close() })
  afterEach(async () => {
    barrier = null
    await backToNormal(site.app, ROOT)
  })

  async function userRow (username: string) {
    return site.database.writer.selectFrom('app_user').selectAll().where('username', '=', username).executeTakeFirst()
  }

  async function userLogOf (username: string) {
    return site.database.writer.selectFrom('user_log').select(['actor', 'channel', 'action', 'detail']).where('username', '=', username).orderBy('id').execute()
  }

  async function sessionsOf (username: string): Promise<number> {
    return (await site.database.writer.selectFrom('session').select('sid').where('principal', '=', username).execute()).length
  }

  function refusal (response: LightMyRequestResponse): string | undefined {
    return /<div class="notice error" role="alert" data-testid="refusal"><p>([^<]*)<\/p><\/div>/.exec(response.body)?.[1]
  }

  function act (browser: Browser, username: string, action: string, fields: Record<string, string> = {}) {
    return postForm(site.app, browser, `/manage/users/${username}/${action}`, fields)
  }

  /** The emergency user's browser: signed in through the form like anyone. */
  async function rootBrowser (): Promise<Browser> {
    return signedInBrowser(site.app, 'emergency')
  }

  /** POST /login with a fresh anonymous session; returns the answer. */
  async function formSignIn (username: string, password: string, ip = '10.9.0.1') {
    const page = await site.app.inject({ url: '/login', remoteAddress: ip })
    return site.app.inject({
      method: 'POST',
      url: '/login',
      remoteAddress: ip,
      headers: { cookie: sessionCookieOf(page)!, 'content-type': FORM },
      payload: new URLSearchParams({ _csrf: csrfTokenIn(page.body), username, password }).toString(),
    })
  }

  describe('the last manager', () => {
    it('the only manager\'s own row says (you), offers no action on itself, and the action column has a header', async () => {
      const main = mainOf((await site.app.inject({ url: '/manage/users', headers: { cookie: boss.cookie } })).body)
      expect(main).toContain('<th scope="col">Actions</th>')
      expect(main).toMatch(/<th scope="row" data-label="User">boss <span class="you">\(you\)<\/span><\/th>\s*<td data-label="Role">manager<\/td>/)
      const ownRow = main.slice(main.indexOf('>boss <span'), main.indexOf('</tr>', main.indexOf('>boss <span')))
      expect(ownRow).not.toContain('<form')
      expect(ownRow).toContain('Another manager changes your own account.')
    })

    it('a manager cannot demote, disable or remove themselves, even with a hand-made form', async () => {
      const before = (await userRow('boss'))!
      for (const action of ['role', 'disable', 'remove', 'reset']) {
        const response = await act(boss, 'boss', action, { role: 'member', version: String(before.version) })
        expect(response.statusCode, action).toBe(400)
        expect(refusal(response), action).toBe('Not changed: is you: ask another manager to change your own account.')
      }
      expect(await userRow('boss')).toEqual(before)
    })

    it('the emergency user cannot take the last manager away: not by role, not by disabling; the page says why', async () => {
      const root = await rootBrowser()
      const before = (await userRow('boss'))!
      const demoted = await act(root, 'boss', 'role', { role: 'member', version: String(before.version) })
      expect(demoted.statusCode).toBe(400)
      expect(refusal(demoted)).toBe('Not changed: boss is the last manager who can sign in, and the site needs one; make someone else a manager first.')
      const disabled = await act(root, 'boss', 'disable', { version: String(before.version) })
      expect(disabled.statusCode).toBe(400)
      expect(refusal(disabled)).toBe('Not changed: boss is the last manager who can sign in, and the site needs one; make someone else a manager first.')
      expect(await userRow('boss')).toEqual(before)
      expect(await userLogOf('boss')).toEqual([])
    })

    it('two managers demoting each other at the same moment: one change commits, the other is refused, a manager remains', async () => {
      await addUser(site.database, 'kim', 'manager')
      const kim = await signIn(site.app, 'kim', 'kim-password')
      const [bossRow, kimRow] = [(await userRow('boss'))!, (await userRow('kim'))!]
      barrier = { arrived: 0, both: deferred() }
      const [kimDemotesBoss, bossDemotesKim] = await Promise.all([
        act(kim, 'boss', 'role', { role: 'member', version: String(bossRow.version) }),
        act(boss, 'kim', 'role', { role: 'member', version: String(kimRow.version) }),
      ])
      barrier = null
      // Both got past the check on what they had read; the commits decided.
      expect([kimDemotesBoss.statusCode, bossDemotesKim.statusCode].sort()).toEqual([303, 400])
      const refused = kimDemotesBoss.statusCode === 400 ? kimDemotesBoss : bossDemotesKim
      expect(refusal(refused)).toMatch(/^Not changed: (boss|kim) is the last manager who can sign in, and the site needs one; make someone else a manager first\.$/)
      const roles = [(await userRow('boss'))!.role, (await userRow('kim'))!.role].sort()
      expect(roles).toEqual(['manager', 'member'])

      // Put boss back as the manager, and take kim away.
      const root = await rootBrowser()
      if ((await userRow('boss'))!.role === 'member') {
        expect((await act(root, 'boss', 'role', { role: 'manager', version: String((await userRow('boss'))!.version) })).statusCode).toBe(303)
        boss = await signedInBrowser(site.app, 'maintainer')
      }
      const kimNow = (await userRow('kim'))!
      expect((await act(root, 'kim', 'disable', { version: String(kimNow.version) })).statusCode).toBe(303)
    })

    it('two managers disabling each other at the same moment: the same', async () => {
      await addUser(site.database, 'lou', 'manager')
      const lou = await signIn(site.app, 'lou', 'lou-password')
      const [bossRow, louRow] = [(await userRow('boss'))!, (await userRow('lou'))!]
      barrier = { arrived: 0, both: deferred() }
      const answers = await Promise.all([
        act(lou, 'boss', 'disable', { version: String(bossRow.version) }),
        act(boss, 'lou', 'disable', { version: String(louRow.version) }),
      ])
      barrier = null
      expect(answers.map((answer) => answer.statusCode).sort()).toEqual([303, 400])
      const disabled = [(await userRow('boss'))!.disabled_at !== null, (await userRow('lou'))!.disabled_at !== null]
      expect(disabled.filter(Boolean)).toHaveLength(1)
      const root = await rootBrowser()
      if (disabled[0]) {
        expect((await act(root, 'boss', 'enable', { version: String((await userRow('boss'))!.version) })).statusCode).toBe(303)
        boss = await signedInBrowser(site.app, 'maintainer')
        expect((await act(root, 'lou', 'disable', { version: String((await userRow('lou'))!.version) })).statusCode).toBe(303)
      }
      expect(await userRow('boss')).toMatchObject({ role: 'manager', disabled_at: null })
    })
  })

  describe('disabling, enabling and removing', () => {
    it('a disabled user cannot sign in by form or by HTTP Basic (cached or not), their sessions end, and the log says who did it', async () => {
      await addUser(site.database, 'dan', 'member')
      const dan = await signIn(site.app, 'dan', 'dan-password')
      const DAN = basicAuth('dan', 'dan-password')
      // A Basic request before: verified and cached for a minute.
      expect((await site.app.inject({ url: '/docs/new', headers: { authorization: DAN } })).statusCode).toBe(200)
      expect(await sessionsOf('dan')).toBe(1)

      const before = (await userRow('dan'))!
      const response = await act(boss, 'dan', 'disable', { version: String(before.version) })
      expect(response.statusCode).toBe(303)
      expect(response.headers.location).toBe('/manage/users?done=disabled&name=dan')
      const after = (await userRow('dan'))!
      expect(after).toMatchObject({ disabled_by: 'boss', version: before.version + 1 })
      expect(Date.parse(after.disabled_at!)).toBeGreaterThan(Date.now() - 60_000)
      const page = mainOf((await site.app.inject({ url: '/manage/users?done=disabled&name=dan', headers: { cookie: boss.cookie } })).body)
      expect(page).toContain('<p class="notice success" role="status">Disabled dan: they cannot sign in, and were signed out everywhere.</p>')
      expect(page).toMatch(/<th scope="row" data-label="User">dan<\/th>\s*<td data-label="Role">member<\/td>\s*<td data-label="Status">disabled <span class="meta nowrap">by boss,/)

      // The open session is gone: the next request is a visitor's.
      expect(await sessionsOf('dan')).toBe(0)
      expect((await site.app.inject({ url: '/docs/new', headers: { cookie: dan.cookie } })).statusCode).toBe(401)
      // The cached Basic credentials no longer count; neither do fresh ones, nor the form.
      expect((await site.app.inject({ url: '/docs/new', headers: { authorization: DAN } })).statusCode).toBe(401)
      expect((await site.app.inject({ url: '/docs/new', headers: { authorization: DAN } })).statusCode).toBe(401)
      const form = await formSignIn('dan', 'dan-password')
      expect(form.statusCode).toBe(401)
      expect(mainOf(form.body)).toContain('Wrong user name or password.')

      // Enabled again, they sign in again.
      expect((await act(boss, 'dan', 'enable', { version: String(after.version) })).statusCode).toBe(303)
      expect(await userRow('dan')).toMatchObject({ disabled_at: null, disabled_by: null })
      expect((await site.app.inject({ url: '/docs/new', headers: { authorization: DAN } })).statusCode).toBe(200)
      expect((await formSignIn('dan', 'dan-password')).statusCode).toBe(303)
      expect(await userLogOf('dan')).toEqual([
        { actor: 'boss', channel: 'web', action: 'disabled', detail: null },
        { actor: 'boss', channel: 'web', action: 'enabled', detail: null },
      ])
    })

    it('a session ended while one of its requests runs is not brought back when that request saves it', async () => {
      await addUser(site.database, 'eve', 'member')
      const eve = await signIn(site.app, 'eve', 'eve-password')
      const sid = decodeURIComponent(eve.cookie.slice('quiesce.sid='.length)).split('.')[0]!
      const stored = await site.database.writer.selectFrom('session').select('data').where('sid', '=', sid).executeTakeFirstOrThrow()
      expect((await act(boss, 'eve', 'disable', { version: String((await userRow('eve'))!.version) })).statusCode).toBe(303)
      // What @fastify/session does at the end of a request that loaded the session before.
      const store = new DatabaseSessionStore(site.database.writer)
      await new Promise<void>((resolve, reject) => store.set(sid, JSON.parse(stored.data), (err) => err ? reject(err) : resolve()))
      expect(await sessionsOf('eve')).toBe(0)
      expect((await site.app.inject({ url: '/docs/new', headers: { cookie: eve.cookie } })).statusCode).toBe(401)
    })

    it('a disabled user can only then be removed; their documents keep their name', async () => {
      await addUser(site.database, 'fay', 'member')
      const FAY = basicAuth('fay', 'fay-password')
      expect((await site.app.inject({ method: 'PUT', url: '/api/docs/by-fay', headers: { authorization: FAY }, payload: { title: 'By Fay', body: 'text' } })).statusCode).toBe(201)
      const row = (await userRow('fay'))!
      const early = await act(boss, 'fay', 'remove', { version: String(row.version) })
      expect(early.statusCode).toBe(400)
      expect(refusal(early)).toBe('Not changed: fay must be disabled before they can be removed.')
      expect(await userRow('fay')).toEqual(row)

      expect((await act(boss, 'fay', 'disable', { version: String(row.version) })).statusCode).toBe(303)
      const stale = await act(boss, 'fay', 'remove', { version: String(row.version) })
      expect(stale.statusCode).toBe(409)
      const removed = await act(boss, 'fay', 'remove', { version: String(row.version + 1) })
      expect(removed.statusCode).toBe(303)
      expect(removed.headers.location).toBe('/manage/users?done=removed&name=fay')
      expect(await userRow('fay')).toBeUndefined()
      expect((await site.app.inject({ url: '/api/docs/by-fay' })).json()).toMatchObject({ updatedBy: 'fay' })
      expect((await userLogOf('fay')).map((entry) => [entry.action, entry.detail])).toEqual([['disabled', null], ['removed', 'was a member']])
      expect((await act(boss, 'fay', 'enable', {})).statusCode).toBe(404)
    })

    it('adding a user and changing a role are in the log; a role change ends the person\'s sessions, so it counts at once', async () => {
      const added = await postForm(site.app, boss, '/manage/users', { username: 'gus', password: 'gus-password', role: 'member' })
      expect(added.statusCode).toBe(303)
      expect(added.headers.location).toBe('/manage/users?done=added&name=gus')
      const gus = await signIn(site.app, 'gus', 'gus-password')
      const row = (await userRow('gus'))!
      expect((await act(boss, 'gus', 'role', { role: 'manager', version: String(row.version) })).statusCode).toBe(303)
      expect((await site.app.inject({ url: '/docs/new', headers: { cookie: gus.cookie } })).statusCode).toBe(401)
      expect(await userLogOf('gus')).toEqual([
        { actor: 'boss', channel: 'web', action: 'added', detail: 'as member' },
        { actor: 'boss', channel: 'web', action: 'role', detail: 'member → manager' },
      ])
      const page = mainOf((await site.app.inject({ url: '/manage/users', headers: { cookie: boss.cookie } })).body)
      expect(page).toContain('<h2 id="user-log-heading">Recent changes to users</h2>')
      expect(page).toMatch(/<td data-label="User">gus<\/td>\s*<td data-label="Change">role <span class="meta">\(member → manager\)<\/span><\/td>/)
      expect((await act(boss, 'gus', 'disable', { version: String(row.version + 1) })).statusCode).toBe(303)
    })

    it('a version that is not a number is bad input, not a conflict', async () => {
      await addUser(site.database, 'nan', 'member')
      const response = await act(boss, 'nan', 'disable', { version: 'abc' })
      expect(response.statusCode).toBe(400)
      expect(refusal(response)).toBe('Not changed: version must be a whole number.')
      expect(await userRow('nan')).toMatchObject({ disabled_at: null, version: 1 })
    })

    it('every form needs its CSRF token', async () => {
      await addUser(site.database, 'hal', 'member')
      const row = (await userRow('hal'))!
      for (const action of ['role', 'disable', 'remove', 'reset']) {
        const response = await site.app.inject({
          method: 'POST',
          url: `/manage/users/hal/${action}`,
          headers: { cookie: boss.cookie, 'content-type': FORM },
          payload: new URLSearchParams({ role: 'manager', version: String(row.version) }).toString(),
        })
        expect(response.statusCode, action).toBe(403)
        expect(mainOf(response.body), action).toContain('<code>QUIESCE_CSRF_INVALID</code>')
      }
      expect(await userRow('hal')).toEqual(row)
    })

    it('in concurrent mode another manager\'s changes are refused at commit, with the reason on the page; the maintainer\'s go through', async () => {
      await addUser(site.database, 'ivy', 'member')
      await addUser(site.database, 'max', 'manager')
      const row = (await userRow('ivy'))!
      await switchTo(site.app, basicAuth('max', 'max-password'), 'concurrent', { reason: 'Moving disks' })
      const page = mainOf((await site.app.inject({ url: '/manage/users', headers: { cookie: boss.cookie } })).body)
      expect(page).toContain('<p class="notice warn" data-write-note>Changes to users are off while the site is in maintenance')
      expect(page).toContain('aria-label="Disable ivy" disabled>Disable</button>')

      const refused = await act(boss, 'ivy', 'disable', { version: String(row.version) })
      expect(refused.statusCode).toBe(503)
      expect(refusal(refused)).toBe('Not changed: The site is in Concurrent (read-only) maintenance: Moving disks; nothing was saved.')
      const reset = await act(boss, 'ivy', 'reset', { version: String(row.version) })
      expect(reset.statusCode).toBe(503)
      expect(reset.body).not.toContain('/reset/')
      expect(await userRow('ivy')).toEqual(row)
      expect(await site.database.writer.selectFrom('password_reset').select('id').where('user_id', '=', row.id).execute()).toEqual([])

      const max = await signIn(site.app, 'max', 'max-password')
      expect((await act(max, 'ivy', 'disable', { version: String(row.version) })).statusCode).toBe(303)
      expect(await userRow('ivy')).toMatchObject({ disabled_by: 'max' })
    })
  })

  describe('password resets', () => {
    async function startReset (username: string, browser = boss): Promise<{ response: LightMyRequestResponse, token: string, link: string }> {
      const response = await act(browser, username, 'reset', { version: String((await userRow(username))!.version) })
      expect(response.statusCode, response.body.slice(0, 300)).toBe(200)
      const link = /<input id="reset-link" type="text" readonly value="([^"]+)">/.exec(response.body)![1]!
      return { response, token: link.slice(link.lastIndexOf('/') + 1), link }
    }

    async function resetForm (token: string) {
      const page = await site.app.inject({ url: `/reset/${token}` })
      return { page, cookie: sessionCookieOf(page), csrf: page.statusCode === 200 ? csrfTokenIn(page.body) : '' }
    }

    /** The form posted with a CSRF token of the sign-in page, so that it can be sent with any token. */
    async function submit (token: string, password: string, again = password) {
      const login = await site.app.inject({ url: '/login' })
      const [cookie, csrf] = [sessionCookieOf(login), csrfTokenIn(login.body)]
      return site.app.inject({
        method: 'POST',
        url: '/reset',
        headers: { cookie: cookie!, 'content-type': FORM },
        payload: new URLSearchParams({ _csrf: csrf, token, password, again }).toString(),
      })
    }

    it('the manager gets a one-time link, shown once and stored only as a hash; the person sets a new password with it, once', async () => {
      await addUser(site.database, 'joy', 'member')
      const joy = await signIn(site.app, 'joy', 'joy-password')
      const { response, token, link } = await startReset('joy')
      expect(response.headers['cache-control']).toBe('no-store')
      expect(link).toBe(`http://localhost:80/reset/${token}`)
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/)
      expect(mainOf(response.body)).toContain('<h2 id="reset-heading">Password reset link for joy</h2>')
      expect(mainOf(response.body)).toContain('<strong>It is shown only this once.</strong>')
      expect(mainOf(response.body)).toMatch(/<td data-label="User">joy<\/td>\s*<td data-label="Change">reset-link <span class="meta">\(valid until \d{4}-\d\d-\d\d \d\d:\d\d UTC\)<\/span><\/td>/)
      const stored = await site.database.writer.selectFrom('password_reset').selectAll().where('user_id', '=', (await userRow('joy'))!.id).execute()
      expect(stored).toHaveLength(1)
      expect(stored[0]).toMatchObject({ token_hash: resetTokenHash(token), created_by: 'boss', used_at: null })
      expect(JSON.stringify(stored)).not.toContain(token)
      expect(Date.parse(stored[0]!.expires_at) - Date.parse(stored[0]!.created_at)).toBe(RESET_LIFETIME_MS)
      // The users page afterwards does not show it again.
      expect((await site.app.inject({ url: '/manage/users', headers: { cookie: boss.cookie } })).body).not.toContain(token)

      const { page } = await resetForm(token)
      expect(page.statusCode).toBe(200)
      expect(page.headers['cache-control']).toBe('no-store')
      expect(page.headers['referrer-policy']).toBe('no-referrer')
      expect(mainOf(page.body)).toContain('<p>For <strong>joy</strong>.')

      const mismatch = await submit(token, 'new-joy-password', 'other-password')
      expect(mismatch.statusCode).toBe(400)
      expect(mainOf(mismatch.body)).toContain('The password and its repetition differ.')
      const short = await submit(token, 'short')
      expect(short.statusCode).toBe(400)
      expect(mainOf(short.body)).toContain('The password must be at least 8 characters.')

      const done = await submit(token, 'new-joy-password')
      expect(done.statusCode).toBe(200)
      expect(mainOf(done.body)).toContain('The new password of <strong>joy</strong> is set, and you were signed out everywhere else.')
      expect((await site.app.inject({ url: '/docs/new', headers: { cookie: joy.cookie } })).statusCode).toBe(401)
      expect((await site.app.inject({ url: '/docs/new', headers: { authorization: basicAuth('joy', 'joy-password') } })).statusCode).toBe(401)
      expect((await site.app.inject({ url: '/docs/new', headers: { authorization: basicAuth('joy', 'new-joy-password') } })).statusCode).toBe(200)

      // Once only.
      const again = await resetForm(token)
      expect(again.page.statusCode).toBe(410)
      expect(mainOf(again.page.body)).toContain('This link was used already')
      expect(mainOf(again.page.body)).not.toContain('<form')
      const replay = await site.app.inject({
        method: 'POST',
        url: '/reset',
        headers: { cookie: sessionCookieOf(page)!, 'content-type': FORM },
        payload: new URLSearchParams({ _csrf: csrfTokenIn(page.body), token, password: 'replayed-password', again: 'replayed-password' }).toString(),
      })
      expect(replay.statusCode).toBe(410)
      expect((await site.app.inject({ url: '/docs/new', headers: { authorization: basicAuth('joy', 'replayed-password') } })).statusCode).toBe(401)
      expect((await userLogOf('joy')).map((entry) => [entry.actor, entry.action])).toEqual([['boss', 'reset-link'], ['joy', 'password-reset']])
    })

    it('a link expires; a newer link replaces an older one; disabling withdraws it; unknown tokens are 404', async () => {
      await addUser(site.database, 'kit', 'member')
      const first = await startReset('kit')
      const second = await startReset('kit')
      expect((await resetForm(first.token)).page.statusCode).toBe(404)
      expect((await resetForm(second.token)).page.statusCode).toBe(200)

      await site.database.writer.updateTable('password_reset').set({ expires_at: new Date(Date.now() - 1000).toISOString() }).where('token_hash', '=', resetTokenHash(second.token)).execute()
      const expired = await resetForm(second.token)
      expect(expired.page.statusCode).toBe(410)
      expect(mainOf(expired.page.body)).toContain('This link has expired. Ask a manager for a new one.')
      expect((await submit(second.token, 'kit-new-password')).statusCode).toBe(410)
      expect((await site.app.inject({ url: '/docs/new', headers: { authorization: basicAuth('kit', 'kit-password') } })).statusCode).toBe(200)

      const third = await startReset('kit')
      expect((await act(boss, 'kit', 'disable', { version: String((await userRow('kit'))!.version) })).statusCode).toBe(303)
      expect((await resetForm(third.token)).page.statusCode).toBe(404)
      const disabledReset = await act(boss, 'kit', 'reset', { version: String((await userRow('kit'))!.version) })
      expect(disabledReset.statusCode).toBe(400)
      expect(refusal(disabledReset)).toBe('Not changed: kit is disabled; enable them first.')
      expect((await resetForm('no-such-token')).page.statusCode).toBe(404)
    })

    it('in concurrent mode the new password is not saved, the form says so, and the link still works afterwards', async () => {
      await addUser(site.database, 'lia', 'member')
      const { token } = await startReset('lia')
      await switchTo(site.app, ROOT, 'concurrent', { reason: 'Backup' })
      const refused = await submit(token, 'lia-new-password')
      expect(refused.statusCode).toBe(503)
      expect(mainOf(refused.body)).toMatch(/Not saved: The site is in Concurrent \(read-only\) maintenance: Backup; nothing was saved\. Your link still works until \d{4}-\d\d-\d\d \d\d:\d\d UTC; try again when the site is back to normal\./)
      expect(mainOf(refused.body)).toContain(`<input type="hidden" name="token" value="${token}">`)
      await switchTo(site.app, ROOT, 'normal')
      expect((await submit(token, 'lia-new-password')).statusCode).toBe(200)
      expect((await site.app.inject({ url: '/docs/new', headers: { authorization: basicAuth('lia', 'lia-new-password') } })).statusCode).toBe(200)
    })
  })
})

describe.each(DATABASE_KINDS)('a user disabled on one instance, on %s', (kind) => {
  let site: TestSite
  let other: FastifyInstance

  beforeAll(async () => {
    site = await startTestSite(kind, { config: { instanceId: 'users-a' } })
    const config = testConfig(site.testDatabase, { instanceId: 'users-b' })
    other = await buildApp({ config, database: await openDatabase(config.database) })
    await other.ready()
    await addPrincipals(site, ['maintainer', 'member'])
  })
  afterAll(async () => {
    await other?.close()
    await site?.close()
  })

  it('cannot use HTTP Basic credentials another instance has verified and cached', async () => {
    const ANN = basicOf('member')
    expect((await other.inject({ url: '/docs/new', headers: { authorization: ANN } })).statusCode).toBe(200)
    const boss = await signedInBrowser(site.app, 'maintainer')
    const version = (await site.database.writer.selectFrom('app_user').select('version').where('username', '=', 'ann').executeTakeFirstOrThrow()).version
    expect((await postForm(site.app, boss, '/manage/users/ann/disable', { version: String(version) })).statusCode).toBe(303)
    expect((await other.inject({ url: '/docs/new', headers: { authorization: ANN } })).statusCode).toBe(401)
  })
})
