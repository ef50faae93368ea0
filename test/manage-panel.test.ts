import type { LightMyRequestResponse } from 'fastify'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { formatTime } from '../app/web/view.js'
import { addUser, csrfTokenIn, mainOf, postForm, signIn, startTestSite, type Browser, type TestSite } from './helpers/app.js'
import { DATABASE_KINDS } from './helpers/databases.js'
import { backToNormal, logCount, logRowsAfter, readState, stateRow, switchTo } from './helpers/maintenance.js'
import { addPrincipals, basicOf, signedInBrowser } from './helpers/principals.js'

const ROOT = basicOf('emergency')
const BOSS = basicOf('maintainer')

/** A `datetime-local` value (UTC, minutes) `hours` from now, and the instant it stands for. */
function localUntil (hours: number): { form: string, iso: string } {
  const at = new Date(Math.floor(Date.now() / 60_000) * 60_000 + hours * 3600_000)
  return { form: at.toISOString().slice(0, 16), iso: at.toISOString() }
}

describe.each(DATABASE_KINDS)('the control panel on %s', (kind) => {
  let site: TestSite
  let boss: Browser
  let deputy: Browser
  let ann: Browser

  beforeAll(async () => {
    site = await startTestSite(kind)
    await addPrincipals(site, ['maintainer', 'manager', 'member', 'emergency'])
    boss = await signedInBrowser(site.app, 'maintainer')
    deputy = await signedInBrowser(site.app, 'manager')
    ann = await signedInBrowser(site.app, 'member')
  })
  afterAll(async () => { await site.close() })
  afterEach(async () => { await backToNormal(site.app, ROOT) })

  function get (url: string, browser?: Browser, headers: Record<string, string> = {}) {
    return site.app.inject({ url, headers: browser === undefined ? headers : { cookie: browser.cookie, ...headers } })
  }

  function changeForm (browser: Browser, fields: { mode: string, reason?: string, until?: string, expectedVersion: number }) {
    return postForm(site.app, browser, '/manage/maintenance', {
      mode: fields.mode,
      reason: fields.reason ?? '',
      until: fields.until ?? '',
      expectedVersion: String(fields.expectedVersion),
    })
  }

  function refusal (response: LightMyRequestResponse): string | undefined {
    return /<div class="notice error" role="alert" data-testid="refusal"><p>([^<]*)<\/p><\/div>/.exec(response.body)?.[1]
  }

  function checkedMode (html: string): string | undefined {
    return /<input type="radio" name="mode" value="(\w+)"[^>]*\schecked>/.exec(html)?.[1]
  }

  async function userRow (username: string) {
    return site.database.writer.selectFrom('app_user').selectAll().where('username', '=', username).executeTakeFirst()
  }

  describe('who may see it', () => {
    it('a visitor gets the 401 page with a Sign in link, a member the 403 page; JSON clients get JSON', async () => {
      for (const url of ['/manage', '/manage/log', '/manage/users']) {
        const visitor = await get(url)
        expect(visitor.statusCode, url).toBe(401)
        expect(visitor.headers['content-type']).toBe('text/html; charset=utf-8')
        const visitorMain = mainOf(visitor.body)
        expect(visitorMain).toContain('<p class="notice error" role="alert">Sign in to do this</p>')
        expect(visitorMain).toContain(`<a class="button" href="/login?next=${encodeURIComponent(url)}">Sign in</a>`)
        expect(visitorMain).toContain('<code>QUIESCE_UNAUTHORIZED</code>')
        expect(visitorMain).not.toContain('Control panel')

        const member = await get(url, ann)
        expect(member.statusCode, url).toBe(403)
        const memberMain = mainOf(member.body)
        expect(memberMain).toContain('<p class="notice error" role="alert">Only managers may do this</p>')
        expect(memberMain).toContain('<code>QUIESCE_FORBIDDEN</code>')
        expect(memberMain).not.toContain('Control panel')
        // The member's navigation has no link to it either.
        expect(member.body).not.toContain('<a href="/manage"')
      }
      const json = await get('/manage', ann, { accept: 'application/json' })
      expect(json.statusCode).toBe(403)
      expect(json.json()).toEqual({ statusCode: 403, code: 'QUIESCE_FORBIDDEN', error: 'Forbidden', message: 'Only managers may do this' })
    })

    it('a change posted by a member or a visitor shows them no panel and changes nothing', async () => {
      const before = await stateRow(site.database)
      const member = await changeForm(ann, { mode: 'exclusive', reason: 'mine now', expectedVersion: before.version })
      expect(member.statusCode).toBe(403)
      expect(mainOf(member.body)).not.toContain('Control panel')

      const visitor = await site.app.inject({
        method: 'POST',
        url: '/manage/maintenance',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: `mode=exclusive&reason=&until=&expectedVersion=${before.version}`,
      })
      // Refused by the CSRF check, which runs before requireManager: the error page, not the panel.
      expect(visitor.statusCode).toBe(403)
      const visitorMain = mainOf(visitor.body)
      expect(visitorMain).toContain('<code>QUIESCE_CSRF_INVALID</code>')
      expect(visitorMain).not.toContain('Control panel')
      expect(visitorMain).not.toContain('test-instance')
      expect(await stateRow(site.database)).toEqual(before)
    })
  })

  describe('the maintenance state and its control', () => {
    it('shows mode, maintainer, reason, since, version, the three options and this instance', async () => {
      const state = await stateRow(site.database)
      const response = await get('/manage', boss)
      expect(response.statusCode).toBe(200)
      expect(response.headers['quiesce-mode']).toBe('normal')
      const main = mainOf(response.body)
      expect(main).toContain('<h1>Control panel</h1>')
      expect(main).toContain('<p class="mode-now mode-normal" data-testid="current-mode">Normal</p>')
      expect(main).toContain('<dt>Maintainer</dt><dd data-testid="maintainer">—</dd>')
      expect(main).toContain('<dt>Reason</dt><dd>—</dd>')
      expect(main).toContain(`<dt>Since</dt><dd><time datetime="${state.since}">${formatTime(state.since)}</time></dd>`)
      expect(main).toContain(`<dt>Version</dt><dd data-testid="state-version">${state.version}</dd>`)
      expect(main).toContain(`<input type="hidden" name="expectedVersion" value="${state.version}">`)
      expect(main).toMatch(/<input type="radio" name="mode" value="normal"[^>]*>/)
      expect(main).toMatch(/<input type="radio" name="mode" value="concurrent"[^>]*>/)
      expect(main).toMatch(/<input type="radio" name="mode" value="exclusive"[^>]*>/)
      expect(main.match(/type="radio" name="mode"/g)).toHaveLength(3)
      expect(checkedMode(main)).toBe('normal')
      for (const label of ['Normal', 'Concurrent (read-only)', 'Exclusive']) expect(main).toMatch(new RegExp(`<strong[^>]*>${label.replace(/[()]/g, '\\$&')}</strong>`))
      expect(main).toContain('<input id="until" name="until" type="datetime-local" value="">')
      expect(main).toMatch(/<tbody data-instance-rows>\s*<tr class="">\s*<th scope="row" data-label="Instance">test-instance<\/th>/)
      expect(main).toContain(`${state.version} ✓ applied`)
    })

    it('a manager switches with the form: 303 to /manage?changed=1, the state and a web log row, the panel says done', async () => {
      const { version } = await readState(site.app)
      const logged = await logCount(site.database)
      const until = localUntil(50)

      const response = await changeForm(boss, { mode: 'concurrent', reason: 'Nightly reindex', until: until.form, expectedVersion: version })

      expect(response.statusCode).toBe(303)
      expect(response.headers.location).toBe('/manage?changed=1')
      expect(await stateRow(site.database)).toMatchObject({ mode: 'concurrent', maintainer: 'boss', reason: 'Nightly reindex', until: until.iso, version: version + 1, changed_by: 'boss' })
      expect(await logRowsAfter(site.database, logged)).toEqual([expect.objectContaining({
        actor: 'boss',
        channel: 'web',
        instance: 'test-instance',
        from_mode: 'normal',
        to_mode: 'concurrent',
        reason: 'Nightly reindex',
        until: until.iso,
        expected_version: version,
        new_version: version + 1,
        outcome: 'applied',
        detail: null,
      })])

      const panel = await get('/manage?changed=1', boss)
      const main = mainOf(panel.body)
      expect(main).toContain(`<p class="notice success" role="status">Done: the site is now <strong>Concurrent (read-only)</strong> (version ${version + 1}).</p>`)
      expect(main).toContain('<p class="mode-now mode-concurrent" data-testid="current-mode">Concurrent (read-only)</p>')
      expect(main).toContain('<dd data-testid="maintainer">boss</dd>')
      expect(main).toContain('<dt>Reason</dt><dd>Nightly reindex</dd>')
      expect(main).toContain(`<dt>Expected end</dt><dd><time datetime="${until.iso}">${formatTime(until.iso)}</time></dd>`)
      expect(checkedMode(main)).toBe('concurrent')
      expect(main).toContain('<input id="reason" name="reason" type="text" maxlength="500" value="Nightly reindex">')
      expect(main).toContain(`<input id="until" name="until" type="datetime-local" value="${until.form}">`)
      expect(main).toContain('<td data-label="Who">boss</td>\n      <td data-label="Via">web</td>\n      <td data-label="Change">Normal → Concurrent (read-only)')
      expect(panel.body).toContain('<p><strong>Concurrent (read-only) maintenance</strong>: Nightly reindex</p>')

      const back = await changeForm(boss, { mode: 'normal', expectedVersion: version + 1 })
      expect(back.statusCode).toBe(303)
      expect(await stateRow(site.database)).toMatchObject({ mode: 'normal', maintainer: null, reason: null, until: null })
    })

    it('another manager is refused with a 403 panel that names the maintainer and keeps what was typed; the log has it', async () => {
      const switched = await switchTo(site.app, BOSS, 'concurrent', { reason: 'Reindexing' })
      const logged = await logCount(site.database)

      const response = await changeForm(deputy, { mode: 'exclusive', reason: 'Deputy wants exclusive', expectedVersion: switched.version })

      expect(response.statusCode).toBe(403)
      expect(refusal(response)).toBe('Not changed: boss switched the site to Concurrent (read-only) and is its maintainer now, so only boss or the emergency user may change it.')
      const main = mainOf(response.body)
      expect(checkedMode(main)).toBe('exclusive')
      // What deputy typed is kept, in a form that is off for deputy: boss maintains the site.
      expect(main).toContain('<input id="reason" name="reason" type="text" maxlength="500" value="Deputy wants exclusive" disabled>')
      expect(main).toContain('<fieldset class="mode-switch" disabled>')
      expect(main).toContain('<p class="notice warn" data-testid="not-yours">Only <strong>boss</strong> (the maintainer) or the emergency user can change the mode now.')
      expect(main).toContain('<dd data-testid="maintainer">boss</dd>')
      expect(await stateRow(site.database)).toMatchObject({ mode: 'concurrent', maintainer: 'boss', version: switched.version })
      expect(await logRowsAfter(site.database, logged)).toEqual([expect.objectContaining({
        actor: 'deputy', channel: 'web', from_mode: 'concurrent', to_mode: 'exclusive', outcome: 'refused', new_version: null, detail: 'the maintainer is boss',
      })])
    })

    it('a change from a stale page is refused with a 409 panel that says someone else changed it, with the new version to retry', async () => {
      const { version: seen } = await readState(site.app)
      await switchTo(site.app, BOSS, 'concurrent', { reason: 'Changed meanwhile' })
      const logged = await logCount(site.database)

      const response = await changeForm(boss, { mode: 'exclusive', reason: 'From an old page', expectedVersion: seen })

      expect(response.statusCode).toBe(409)
      expect(refusal(response)).toBe(`Not changed: someone else changed the maintenance state while you were looking at it (it is now at version ${seen + 1}, Concurrent (read-only)). Check the state below and apply your change again if it still makes sense.`)
      const main = mainOf(response.body)
      expect(main).toContain(`<input type="hidden" name="expectedVersion" value="${seen + 1}">`)
      expect(checkedMode(main)).toBe('exclusive')
      expect(main).toContain('value="From an old page"')
      expect(await stateRow(site.database)).toMatchObject({ mode: 'concurrent', version: seen + 1 })
      expect(await logRowsAfter(site.database, logged)).toEqual([expect.objectContaining({
        actor: 'boss', channel: 'web', outcome: 'refused', expected_version: seen, detail: `based on version ${seen}, but it is at ${seen + 1}`,
      })])
    })

    it('an expected end in the past is refused with a 400 panel that says why', async () => {
      const { version } = await readState(site.app)
      const past = localUntil(-2)
      const response = await changeForm(boss, { mode: 'concurrent', reason: 'Late', until: past.form, expectedVersion: version })
      expect(response.statusCode).toBe(400)
      expect(refusal(response)).toBe('Not changed: the expected end must be in the future')
      expect(mainOf(response.body)).toContain(`<input id="until" name="until" type="datetime-local" value="${past.form}">`)
      expect(await stateRow(site.database)).toMatchObject({ mode: 'normal', version })
      const [row] = await logRowsAfter(site.database, (await logCount(site.database)) - 1)
      expect(row).toMatchObject({ actor: 'boss', channel: 'web', outcome: 'refused', until: past.iso })
    })

    it('a member\'s change through the form is judged by the rules: refused, logged, and no panel shown', async () => {
      const { version } = await readState(site.app)
      const before = await logCount(site.database)
      const response = await changeForm(ann, { mode: 'concurrent', reason: 'not mine to give', expectedVersion: version })
      expect(response.statusCode).toBe(403)
      const main = mainOf(response.body)
      expect(main).toContain('<code>QUIESCE_NOT_MANAGER</code>')
      expect(main).not.toContain('Control panel')
      expect(await logRowsAfter(site.database, before)).toMatchObject([
        { actor: 'ann', channel: 'web', from_mode: 'normal', to_mode: 'concurrent', outcome: 'refused', new_version: null, detail: 'ann is not a manager' },
      ])
      expect((await stateRow(site.database)).version).toBe(version)
    })

    it('normal to normal is refused with a 400 panel', async () => {
      const { version } = await readState(site.app)
      const response = await changeForm(boss, { mode: 'normal', expectedVersion: version })
      expect(response.statusCode).toBe(400)
      expect(refusal(response)).toBe('Not changed: the site is already in normal mode')
    })
  })

  describe('closing the site, and coming back', () => {
    function impactOf (html: string, what: string): string | undefined {
      const match = new RegExp(`<li data-testid="impact-${what}">([\\s\\S]*?)</li>`).exec(html)
      return match?.[1]!.replace(/<[^>]+>/g, '').replace(/\s+/g, ' ').trim()
    }

    it('Exclusive is confirmed on a page of its own that says who is signed in and will be locked out, and what is being written', async () => {
      const { version } = await readState(site.app)
      const logged = await logCount(site.database)
      // A write in flight on this instance (as a task's batch counts itself).
      const done = site.app.maintenance.trackWrite()
      const until = localUntil(2)
      const step = await changeForm(boss, { mode: 'exclusive', reason: 'Moving house', until: until.form, expectedVersion: version })
      done()
      expect(step.statusCode).toBe(200)
      const main = mainOf(step.body)
      expect(main).toContain('<h1>Close the site?</h1>')
      // deputy and ann are signed in (boss is the one closing it; the emergency user always gets in).
      const people = impactOf(main, 'people')!
      expect(people).toMatch(/^\d+ people are signed in and will be locked out \(\d+ used the site in the last 15 minutes\):/)
      expect(people).toContain('ann')
      expect(people).toContain('deputy')
      expect(people).not.toMatch(/\bboss\b/)
      expect(impactOf(main, 'writes')).toBe('1 write is in flight on the one instance: they are refused at commit if they have not committed when the switch lands (nothing half-written), and their people see “not saved”.')
      expect(main).toContain('<dt>Reason</dt><dd>Moving house</dd>')
      expect(main).toContain(`<dt>Expected end</dt><dd>${until.form.replace('T', ' ')} UTC</dd>`)
      expect(main).toContain('<input type="hidden" name="confirmed" value="1">')
      expect(main).toContain(`<input type="hidden" name="expectedVersion" value="${version}">`)
      expect(main).toContain('<a href="/manage">No, go back</a>')
      // Nothing changed, nothing was attempted yet.
      expect(await stateRow(site.database)).toMatchObject({ mode: 'normal', version })
      expect(await logCount(site.database)).toBe(logged)

      const confirmed = await postForm(site.app, boss, '/manage/maintenance', { mode: 'exclusive', reason: 'Moving house', until: until.form, expectedVersion: String(version), confirmed: '1' })
      expect(confirmed.statusCode).toBe(303)
      expect(await stateRow(site.database)).toMatchObject({ mode: 'exclusive', maintainer: 'boss', reason: 'Moving house', until: until.iso })
    })

    it('the emergency user taking over is told so, and the maintainer is counted among those locked out', async () => {
      await switchTo(site.app, BOSS, 'concurrent', { reason: 'Reindexing' })
      const { version } = await readState(site.app)
      // In the emergency user's browser: Basic credentials alone carry no authority to a form.
      const root = await signedInBrowser(site.app, 'emergency')
      const step = await postForm(site.app, root, '/manage/maintenance', { mode: 'exclusive', reason: 'Taking over', until: '', expectedVersion: String(version) })
      expect(step.statusCode).toBe(200)
      const main = mainOf(step.body)
      expect(main).toContain('In Exclusive mode only you get in (you become its maintainer).')
      expect(impactOf(main, 'takeover')).toBe('You take over from boss, who maintains the site now: boss is locked out like everyone else, and the log says you took over.')
      expect(impactOf(main, 'people')).toMatch(/\bboss\b/)
      expect(await stateRow(site.database)).toMatchObject({ mode: 'concurrent', maintainer: 'boss' })
    })

    it('with nobody else signed in and nothing in flight it says so; a stale form is refused at once, without the step', async () => {
      await site.database.writer.deleteFrom('session').where('principal', '!=', 'boss').execute()
      const { version } = await readState(site.app)
      const step = mainOf((await changeForm(boss, { mode: 'exclusive', expectedVersion: version })).body)
      expect(impactOf(step, 'people')).toBe('Nobody else is signed in.')
      expect(impactOf(step, 'writes')).toBe('No write is in flight on the one instance.')
      const stale = await changeForm(boss, { mode: 'exclusive', expectedVersion: version - 1 })
      expect(stale.statusCode).toBe(409)
      deputy = await signedInBrowser(site.app, 'manager')
      ann = await signedInBrowser(site.app, 'member')
    })

    it('the maintainer gets a one-click Back to Normal and sees for how long; another manager sees who may change it, and no form', async () => {
      await switchTo(site.app, BOSS, 'concurrent', { reason: 'Reindexing' })
      const main = mainOf((await get('/manage', boss)).body)
      expect(main).toMatch(/<dt>For<\/dt><dd data-elapsed-since="[^"]+" data-testid="elapsed">0 min<\/dd>/)
      const back = /<form method="post" action="\/manage\/maintenance" class="back-to-normal">[\s\S]*?<\/form>/.exec(main)?.[0]
      expect(back).toContain('<input type="hidden" name="mode" value="normal">')
      expect(back).toContain('<button type="submit">Back to Normal</button>')
      expect(back).toContain('Everyone can read and write again at once.')
      expect(main).not.toContain('data-testid="not-yours"')

      const other = mainOf((await get('/manage', deputy)).body)
      expect(other).not.toContain('Back to Normal')
      expect(other).toContain('<p class="notice warn" data-testid="not-yours">Only <strong>boss</strong> (the maintainer) or the emergency user can change the mode now.')
      // No form to fill in that would only be refused.
      expect(other).not.toContain('<fieldset class="mode-switch"')
      expect(other).not.toContain('<h2 id="change-heading">Change the mode</h2>')
      // The emergency user may, and is told it takes over.
      const root = mainOf((await get('/manage', undefined, { authorization: ROOT })).body)
      expect(root).toContain('You take over from boss and reopen the site for everyone.')

      const csrf = csrfTokenIn((await get('/manage', boss)).body)
      const version = (await stateRow(site.database)).version
      const clicked = await site.app.inject({
        method: 'POST',
        url: '/manage/maintenance',
        headers: { cookie: boss.cookie, 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ _csrf: csrf, mode: 'normal', expectedVersion: String(version) }).toString(),
      })
      expect(clicked.statusCode).toBe(303)
      expect(await stateRow(site.database)).toMatchObject({ mode: 'normal', version: version + 1 })
    })

    it('the expected end shows the current UTC time, and the instances the time they were checked; this instance is shown as it is now', async () => {
      await switchTo(site.app, BOSS, 'concurrent')
      const before = Date.now()
      const main = mainOf((await get('/manage', boss)).body)
      const now = /<time data-now datetime="([^"]+)">([^<]+)<\/time> now\./.exec(main)
      expect(Date.parse(now![1]!)).toBeGreaterThanOrEqual(before - 1000)
      expect(now![2]).toBe(formatTime(now![1]!))
      expect(main).toContain('<span class="until-presets" data-until-presets hidden>Set it to')
      expect(main).toContain('<button type="button" class="small" data-until-minutes="15">now + 15 min</button>')
      expect(main).toContain('<button type="button" class="small" data-until-minutes="60">now + 1 h</button>')
      expect(main).toMatch(/<p class="meta checked">Checked at <time data-checked datetime="[^"]+">\d\d:\d\d:\d\d UTC<\/time>/)
      // Right after the switch, before any heartbeat: this instance has applied it.
      const { version } = await readState(site.app)
      expect(main).toContain(`${version} ✓ applied`)
      expect(main).toContain(`Quiet: every instance enforces version ${version} and no write is in flight.`)
      expect(main).toContain(`<td data-label="Database">${kind === 'sqlite' ? 'SQLite file' : 'PostgreSQL primary'}</td>`)
    })
  })

  describe('the log page', () => {
    it('lists applied and refused attempts, newest first, 50 a page, with a link to older ones', async () => {
      const { version } = await readState(site.app)
      await changeForm(deputy, { mode: 'concurrent', reason: 'stale on purpose', expectedVersion: version + 7 })
      await switchTo(site.app, BOSS, 'concurrent', { reason: 'Logged reason' })
      await switchTo(site.app, BOSS, 'normal')
      const now = new Date().toISOString()
      const filler = Array.from({ length: 60 }, (_, index) => ({
        at: now,
        actor: `filler-${String(index).padStart(2, '0')}`,
        channel: 'cli' as const,
        instance: 'elsewhere',
        from_mode: 'normal' as const,
        to_mode: 'concurrent',
        reason: null,
        until: null,
        expected_version: 1,
        new_version: null,
        outcome: 'refused' as const,
        detail: 'filler',
      }))
      // Older than the attempts above would be ideal, but ids only grow; the fillers are the newest.
      await site.database.writer.insertInto('maintenance_log').values(filler).execute()
      const ids = (await site.database.writer.selectFrom('maintenance_log').select('id').orderBy('id', 'desc').execute()).map((row) => row.id)

      const first = await get('/manage/log', boss)
      expect(first.statusCode).toBe(200)
      const firstMain = mainOf(first.body)
      expect(firstMain).toContain('<h1>Maintenance log</h1>')
      expect(firstMain.match(/<tr class="outcome-/g)).toHaveLength(50)
      expect(firstMain).toContain('<td data-label="Who">filler-59</td>')
      expect(firstMain).toContain('<td data-label="Who">filler-10</td>')
      expect(firstMain).not.toContain('<td data-label="Who">filler-09</td>')
      expect(firstMain.indexOf('<td data-label="Who">filler-59')).toBeLessThan(firstMain.indexOf('<td data-label="Who">filler-58'))
      expect(firstMain).toContain(`<a rel="next" href="/manage/log?before=${ids[49]}">Older →</a>`)

      const second = await get(`/manage/log?before=${ids[49]}`, boss)
      const secondMain = mainOf(second.body)
      expect(secondMain.match(/<tr class="outcome-/g)).toHaveLength(Math.min(50, ids.length - 50))
      expect(secondMain).toContain('<td data-label="Who">filler-09</td>')
      expect(secondMain).toContain('<td data-label="Who">filler-00</td>')
      expect(secondMain).not.toContain('<td data-label="Who">filler-10</td>')
      // The attempts made through the panel and the API, applied and refused, with their details.
      expect(secondMain).toContain('<tr class="outcome-refused">')
      expect(secondMain).toMatch(/<td data-label="Who">deputy<\/td>\s*<td data-label="Via">web<\/td>\s*<td data-label="Change">Normal → Concurrent \(read-only\)<\/td>\s*<td data-label="Outcome"><strong>refused<\/strong>: based on version \d+, but it is at \d+<\/td>/)
      expect(secondMain).toMatch(/<td data-label="Who">boss<\/td>\s*<td data-label="Via">api<\/td>\s*<td data-label="Change">Normal → Concurrent \(read-only\) <span class="meta">\(v\d+\)<\/span><\/td>\s*<td data-label="Outcome"><strong>applied<\/strong><\/td>\s*<td data-label="Reason">Logged reason<\/td>/)
      expect(secondMain).toContain('<tr class="outcome-applied">')
      if (ids.length <= 100) expect(secondMain).not.toContain('Older →')
    })
  })

  describe('users', () => {
    it('lists the users with their roles', async () => {
      const response = await get('/manage/users', boss)
      expect(response.statusCode).toBe(200)
      const main = mainOf(response.body)
      for (const [name, role] of [['ann', 'member'], ['boss', 'manager'], ['deputy', 'manager']]) {
        expect(main).toMatch(new RegExp(`<th scope="row" data-label="User">${name}(</th>| <span class="you">)[^]*?<td data-label="Role">${role}</td>`))
      }
      expect(main.indexOf('>ann</th>')).toBeLessThan(main.indexOf('>boss <span class="you">(you)</span></th>'))
    })

    it('adds a user, who can then sign in', async () => {
      const response = await postForm(site.app, boss, '/manage/users', { username: 'carol', password: 'carol-password', role: 'member' })
      expect(response.statusCode).toBe(303)
      expect(response.headers.location).toBe('/manage/users?done=added&name=carol')
      expect(await userRow('carol')).toMatchObject({ username: 'carol', role: 'member', version: 1 })
      const page = await get('/manage/users?done=added&name=carol', boss)
      expect(mainOf(page.body)).toContain('<p class="notice success" role="status">Added carol.</p>')
      expect(mainOf(page.body)).toMatch(/<th scope="row" data-label="User">carol<\/th>\s*<td data-label="Role">member<\/td>/)
      await signIn(site.app, 'carol', 'carol-password')
    })

    it('refuses bad input with 400, the messages next to the fields, and the name kept', async () => {
      const response = await postForm(site.app, boss, '/manage/users', { username: 'Bad Name!', password: 'short', role: 'member' })
      expect(response.statusCode).toBe(400)
      const main = mainOf(response.body)
      expect(main).toContain('<p class="field-error" id="username-error">User name must be 2–40 characters: lower-case letters, digits, dot, dash or underscore, starting with a letter or digit.</p>')
      expect(main).toContain('<p class="field-error" id="password-error">Password must be at least 8 characters.</p>')
      expect(main).toContain('value="Bad Name!" aria-invalid="true" aria-describedby="username-error"')
      expect(await userRow('Bad Name!')).toBeUndefined()

      const taken = await postForm(site.app, boss, '/manage/users', { username: 'ann', password: 'another-password', role: 'manager' })
      expect(taken.statusCode).toBe(400)
      expect(mainOf(taken.body)).toContain('<p class="field-error" id="username-error">User name is already taken.</p>')
      expect(mainOf(taken.body)).toContain('<option value="manager" selected>Manager</option>')
      expect(await userRow('ann')).toMatchObject({ role: 'member' })
    })

    it('refuses a role that does not exist with 400 and says so', async () => {
      const response = await postForm(site.app, boss, '/manage/users', { username: 'dave', password: 'dave-password', role: 'admin' })
      expect(response.statusCode).toBe(400)
      expect(mainOf(response.body)).toContain('<p class="field-error" id="role-error">Role must be member or manager.</p>')
      expect(await userRow('dave')).toBeUndefined()
    })

    it('changes a role, judged against the version the page showed', async () => {
      await addUser(site.database, 'erin', 'member')
      const before = (await userRow('erin'))!
      const response = await postForm(site.app, boss, '/manage/users/erin/role', { role: 'manager', version: String(before.version) })
      expect(response.statusCode).toBe(303)
      expect(response.headers.location).toBe('/manage/users?done=role&name=erin')
      expect(await userRow('erin')).toMatchObject({ role: 'manager', version: before.version + 1 })

      const stale = await postForm(site.app, boss, '/manage/users/erin/role', { role: 'member', version: String(before.version) })
      expect(stale.statusCode).toBe(409)
      expect(refusal(stale)).toBe('Not changed: erin was changed by someone else meanwhile; look again and retry.')
      expect(await userRow('erin')).toMatchObject({ role: 'manager', version: before.version + 1 })

      const back = await postForm(site.app, boss, '/manage/users/erin/role', { role: 'member', version: String(before.version + 1) })
      expect(back.statusCode).toBe(303)
      expect(await userRow('erin')).toMatchObject({ role: 'member' })
    })

    it('refuses to take the manager role from the last manager, even for the emergency user; nobody changes their own role', async () => {
      const managers = await site.database.writer.selectFrom('app_user').select(['username', 'version']).where('role', '=', 'manager').orderBy('username').execute()
      const others = managers.filter((manager) => manager.username !== 'boss')
      for (const other of others) {
        expect((await postForm(site.app, boss, `/manage/users/${other.username}/role`, { role: 'member', version: String(other.version) })).statusCode).toBe(303)
      }
      const last = (await userRow('boss'))!
      const own = await postForm(site.app, boss, '/manage/users/boss/role', { role: 'member', version: String(last.version) })
      expect(own.statusCode).toBe(400)
      expect(refusal(own)).toBe('Not changed: is you: ask another manager to change your own account.')
      const root = await signedInBrowser(site.app, 'emergency')
      const byRoot = await postForm(site.app, root, '/manage/users/boss/role', { role: 'member', version: String(last.version) })
      expect(byRoot.statusCode).toBe(400)
      expect(refusal(byRoot)).toBe('Not changed: boss is the last manager who can sign in, and the site needs one; make someone else a manager first.')
      expect(await userRow('boss')).toMatchObject({ role: 'manager', version: last.version })

      for (const other of others) {
        const row = (await userRow(other.username))!
        expect((await postForm(site.app, boss, `/manage/users/${other.username}/role`, { role: 'manager', version: String(row.version) })).statusCode).toBe(303)
      }
      // A role change ends the sessions of the person changed: deputy signs in again.
      deputy = await signedInBrowser(site.app, 'manager')
    })

    it('an unknown user is 404', async () => {
      const response = await postForm(site.app, boss, '/manage/users/nobody/role', { role: 'manager' })
      expect(response.statusCode).toBe(404)
      expect(mainOf(response.body)).toContain('There is no user &quot;nobody&quot;')
    })
  })
})
