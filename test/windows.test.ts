import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { buildApp } from '../app/app.js'
import { openDatabase } from '../app/db/database.js'
import { addUser, mainOf, postForm, signIn, startTestSite, testConfig, type TestSite } from './helpers/app.js'
import { DATABASE_KINDS } from './helpers/databases.js'
import { ISO_TIMESTAMP, logCount, logRows, logRowsAfter, readState, stateRow, switchTo } from './helpers/maintenance.js'
import { addPrincipals, basicOf, signedInBrowser } from './helpers/principals.js'
import { until } from './helpers/tasks.js'

const BOSS = basicOf('maintainer')
const ANN = basicOf('member')
const ROOT = basicOf('emergency')
const MINUTE = 60_000

/** `minutes` from now, as the ISO string the site stores. */
function inMinutes (minutes: number): string {
  return new Date(Date.now() + minutes * MINUTE).toISOString()
}

/** What a `datetime-local` input sends: minutes, no zone (the panel takes it as UTC). */
function localInput (iso: string): string {
  return iso.slice(0, 16)
}

function hhmm (iso: string): string {
  return iso.slice(11, 16)
}

async function schedule (app: FastifyInstance, authorization: string | undefined, body: Record<string, unknown>) {
  return app.inject({ method: 'POST', url: '/api/maintenance/windows', headers: authorization === undefined ? {} : { authorization }, payload: body })
}

async function windowRow (site: TestSite, id: number) {
  return site.database.writer.selectFrom('maintenance_window').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
}

/** The announcement every page carries for the next window, as the banner renders it. */
function announcement (label: string, window: { startsAt: string, endsAt: string, reason: string | null }, minutesText: string): string {
  const onDate = window.startsAt.slice(0, 10) !== new Date().toISOString().slice(0, 10) ? ` on ${window.startsAt.slice(0, 10)}` : ''
  return `<strong>${label} starts at <time datetime="${window.startsAt}">${hhmm(window.startsAt)} UTC</time>, in ${minutesText}</strong>${window.reason ? `: ${window.reason}` : ''}. It is expected to end at <time datetime="${window.endsAt}">${hhmm(window.endsAt)} UTC</time>${onDate}.`
}

describe.each(DATABASE_KINDS)('scheduled maintenance windows on %s', (kind) => {
  let site: TestSite
  let other: FastifyInstance

  beforeAll(async () => {
    site = await startTestSite(kind, { config: { instanceId: 'windows-a' } })
    await addPrincipals(site, ['maintainer', 'manager', 'member', 'emergency'])
    const config = testConfig(site.testDatabase, { instanceId: 'windows-b' })
    other = await buildApp({ config, database: await openDatabase(config.database) })
    await other.ready()
  })
  afterAll(async () => {
    await other?.close()
    await site?.close()
  })
  beforeEach(async () => {
    // Each test starts in normal mode with nothing scheduled.
    if ((await readState(site.app)).mode !== 'normal') await switchTo(site.app, ROOT, 'normal')
    await site.database.writer.deleteFrom('maintenance_window').execute()
    await site.app.maintenance.runSchedule(new Date())
    await other.maintenance.runSchedule(new Date())
  })

  describe('scheduling', () => {
    it('a manager schedules a window over the API: 201 and the window', async () => {
      const startsAt = inMinutes(10)
      const endsAt = inMinutes(40)
      const before = Date.now()
      const response = await schedule(site.app, BOSS, { mode: 'concurrent', reason: ' catalog rebuild ', startsAt, endsAt })
      expect(response.statusCode, response.body).toBe(201)
      const window = response.json()
      expect(window).toEqual({
        id: expect.any(Number),
        mode: 'concurrent',
        reason: 'catalog rebuild',
        startsAt,
        endsAt,
        createdBy: 'boss',
        createdAt: expect.stringMatching(ISO_TIMESTAMP),
        state: 'scheduled',
        startedVersion: null,
        note: null,
      })
      expect(Date.parse(window.createdAt)).toBeGreaterThanOrEqual(before)
      // Times with an offset are stored in UTC.
      const offset = await schedule(site.app, BOSS, { mode: 'exclusive', startsAt: '2099-01-01T12:00:00+02:00', endsAt: '2099-01-01T13:30+02:00' })
      expect(offset.statusCode, offset.body).toBe(201)
      expect(offset.json()).toMatchObject({ startsAt: '2099-01-01T10:00:00.000Z', endsAt: '2099-01-01T11:30:00.000Z', reason: null })

      const list = await site.app.inject({ url: '/api/maintenance/windows', headers: { authorization: BOSS } })
      expect(list.json().windows).toEqual([window, offset.json()])
      // Visitors see what is scheduled, not who scheduled it.
      const visitor = await site.app.inject({ url: '/api/maintenance/windows' })
      expect(visitor.json().windows[0]).toEqual({ ...window, createdBy: null, note: null })
    })

    it('refuses a start in the past, an end before the start, an overlap, a bad mode or time with 400; members 403, visitors 401', async () => {
      const taken = (await schedule(site.app, BOSS, { mode: 'exclusive', startsAt: inMinutes(60), endsAt: inMinutes(120) })).json()
      const stored = await site.database.writer.selectFrom('maintenance_window').selectAll().execute()
      const logged = await logCount(site.database)
      const cases: Array<[Record<string, unknown>, string]> = [
        [{ mode: 'concurrent', startsAt: inMinutes(-1), endsAt: inMinutes(30) }, 'the start must be in the future'],
        [{ mode: 'concurrent', startsAt: inMinutes(30), endsAt: inMinutes(20) }, 'the end must be after the start'],
        [{ mode: 'concurrent', startsAt: inMinutes(30), endsAt: inMinutes(30) }, 'the end must be after the start'],
        [{ mode: 'concurrent', startsAt: inMinutes(30), endsAt: inMinutes(90) }, `it overlaps the window from ${taken.startsAt} to ${taken.endsAt}`],
        [{ mode: 'concurrent', startsAt: inMinutes(90), endsAt: inMinutes(100) }, `it overlaps the window from ${taken.startsAt} to ${taken.endsAt}`],
        [{ mode: 'concurrent', startsAt: inMinutes(30), endsAt: inMinutes(300) }, `it overlaps the window from ${taken.startsAt} to ${taken.endsAt}`],
        [{ mode: 'concurrent', startsAt: 'tomorrow at noon', endsAt: inMinutes(300) }, 'the start must be an ISO-8601 date and time, like 2026-11-22T14:00:00Z'],
        [{ mode: 'concurrent', startsAt: inMinutes(300), endsAt: '2099-13-45T99:00Z' }, 'the end must be an ISO-8601 date and time, like 2026-11-22T16:00:00Z'],
      ]
      for (const [body, message] of cases) {
        const response = await schedule(site.app, BOSS, body)
        expect(response.statusCode, message).toBe(400)
        expect(response.json()).toEqual({ statusCode: 400, code: 'QUIESCE_INVALID_STATE_CHANGE', error: 'Bad Request', message })
      }
      // A mode that is not a maintenance mode is refused by the body's schema.
      for (const mode of ['normal', 'closed']) {
        const response = await schedule(site.app, BOSS, { mode, startsAt: inMinutes(300), endsAt: inMinutes(310) })
        expect(response.statusCode).toBe(400)
        expect(response.json()).toMatchObject({ statusCode: 400, code: 'QUIESCE_INVALID_INPUT', message: 'body/mode must be equal to one of the allowed values' })
      }
      // A window right after another one does not overlap it.
      expect((await schedule(site.app, BOSS, { mode: 'concurrent', startsAt: taken.endsAt, endsAt: inMinutes(150) })).statusCode).toBe(201)

      const member = await schedule(site.app, ANN, { mode: 'concurrent', startsAt: inMinutes(300), endsAt: inMinutes(310) })
      expect(member.statusCode).toBe(403)
      expect(member.json()).toEqual({ statusCode: 403, code: 'QUIESCE_NOT_MANAGER', error: 'Forbidden', message: 'Only managers and the emergency user may schedule maintenance' })
      const visitor = await schedule(site.app, undefined, { mode: 'concurrent', startsAt: inMinutes(300), endsAt: inMinutes(310) })
      expect(visitor.statusCode).toBe(401)
      expect(visitor.json().code).toBe('QUIESCE_UNAUTHORIZED')
      // The emergency user may schedule too.
      expect((await schedule(site.app, ROOT, { mode: 'exclusive', startsAt: inMinutes(400), endsAt: inMinutes(410) })).json()).toMatchObject({ createdBy: 'root' })

      const after = await site.database.writer.selectFrom('maintenance_window').selectAll().orderBy('id').execute()
      expect(after.slice(0, stored.length)).toEqual(stored)
      expect(after.map((row) => row.created_by)).toEqual(['boss', 'boss', 'root'])
      // Scheduling is not a change of the state: no audit row.
      expect(await logCount(site.database)).toBe(logged)
    })

    it('the control panel schedules from its form (UTC datetime-local), lists the window, explains a refusal and cancels', async () => {
      const boss = await signedInBrowser(site.app, 'maintainer')
      const startsAt = new Date(Math.ceil((Date.now() + 120 * MINUTE) / MINUTE) * MINUTE).toISOString()
      const endsAt = new Date(Date.parse(startsAt) + 90 * MINUTE).toISOString()
      const response = await postForm(site.app, boss, '/manage/windows', { mode: 'exclusive', reason: 'database upgrade', startsAt: localInput(startsAt), endsAt: localInput(endsAt) })
      expect(response.statusCode, response.body).toBe(303)
      expect(response.headers.location).toBe('/manage?scheduled=1#windows')
      const [row] = await site.database.writer.selectFrom('maintenance_window').selectAll().execute()
      expect(row).toMatchObject({ mode: 'exclusive', reason: 'database upgrade', starts_at: startsAt, ends_at: endsAt, created_by: 'boss', state: 'scheduled' })

      const panel = mainOf((await site.app.inject({ url: '/manage?scheduled=1', headers: { cookie: boss.cookie } })).body)
      expect(panel).toContain('<p class="notice success" role="status">Scheduled.')
      expect(panel).toContain(`<td data-label="Mode">Exclusive</td>
        <td data-label="Reason">database upgrade</td>
        <td data-label="Start"><time datetime="${startsAt}">${startsAt.slice(0, 10)} ${hhmm(startsAt)} UTC</time></td>
        <td data-label="End"><time datetime="${endsAt}">${endsAt.slice(0, 10)} ${hhmm(endsAt)} UTC</time></td>
        <td data-label="State">scheduled</td>
        <td data-label="By">boss</td>`)
      expect(panel).toContain(`<form method="post" action="/manage/windows/${row!.id}/cancel" class="inline">`)

      // Refused: the end before the start. Said in words, with what was typed.
      const refused = await postForm(site.app, boss, '/manage/windows', { mode: 'concurrent', reason: 'backwards', startsAt: localInput(endsAt), endsAt: localInput(startsAt) })
      expect(refused.statusCode).toBe(400)
      const refusedMain = mainOf(refused.body)
      expect(refusedMain).toContain('Not scheduled: the end must be after the start')
      expect(refusedMain).toContain(`name="startsAt" type="datetime-local" required value="${localInput(endsAt)}"`)
      expect(refusedMain).toContain('value="backwards"')
      const badMode = await postForm(site.app, boss, '/manage/windows', { mode: 'normal', reason: '', startsAt: localInput(inMinutes(600)), endsAt: localInput(inMinutes(700)) })
      expect(badMode.statusCode).toBe(400)
      expect(mainOf(badMode.body)).toContain('Not scheduled: a window&#39;s mode must be concurrent or exclusive')
      expect(await site.database.writer.selectFrom('maintenance_window').select('id').execute()).toHaveLength(1)

      // A member may not schedule.
      await addUser(site.database, 'mia', 'member')
      const mia = await signIn(site.app, 'mia', 'mia-password')
      const member = await postForm(site.app, mia, '/manage/windows', { mode: 'concurrent', reason: '', startsAt: localInput(inMinutes(600)), endsAt: localInput(inMinutes(700)) })
      expect(member.statusCode).toBe(403)

      const cancel = await postForm(site.app, boss, `/manage/windows/${row!.id}/cancel`, {})
      expect(cancel.statusCode).toBe(303)
      expect(cancel.headers.location).toBe('/manage#windows')
      expect((await windowRow(site, row!.id)).state).toBe('cancelled')
      const again = await postForm(site.app, boss, `/manage/windows/${row!.id}/cancel`, {})
      expect(again.statusCode).toBe(400)
      expect(mainOf(again.body)).toContain(`Not cancelled: window ${row!.id} has started or ended already, or does not exist`)
    })
  })

  describe('the announcement', () => {
    it('every page announces the next window within a day: mode, start time, minutes to go, reason and end', async () => {
      const window = (await schedule(site.app, BOSS, { mode: 'concurrent', reason: 'catalog rebuild', startsAt: inMinutes(10), endsAt: inMinutes(40) })).json()
      const expected = announcement('Concurrent (read-only) maintenance', window, '10 minutes')
      const ann = await signedInBrowser(site.app, 'member')
      for (const [url, cookie] of [['/', undefined], ['/login', undefined], ['/search?q=brass', undefined], ['/docs/new', ann.cookie], ['/manage', (await signedInBrowser(site.app, 'maintainer')).cookie]] as const) {
        const page = await site.app.inject({ url, headers: cookie === undefined ? {} : { cookie } })
        expect(page.statusCode, url).toBe(200)
        expect(page.body, url).toContain('<div class="maintenance-announcement" role="note" data-announcement>')
        expect(page.body, url).toContain(expected)
      }
      // The other instance announces it as well (it learns of it on its next schedule check).
      await other.maintenance.runSchedule(new Date())
      expect((await other.inject({ url: '/' })).body).toContain(expected)
      // JSON answers are not pages.
      expect((await site.app.inject({ url: '/api/maintenance' })).body).not.toContain('starts at')
    })

    it('says hours when it is further away, names exclusive maintenance, and says nothing of a window more than a day ahead or cancelled', async () => {
      const exclusive = (await schedule(site.app, BOSS, { mode: 'exclusive', reason: null, startsAt: inMinutes(180), endsAt: inMinutes(240) })).json()
      let home = (await site.app.inject({ url: '/' })).body
      expect(home).toContain(announcement('Exclusive maintenance', exclusive, '3 hours'))
      const cancelled = await site.app.inject({ method: 'DELETE', url: `/api/maintenance/windows/${exclusive.id}`, headers: { authorization: BOSS } })
      expect(cancelled.statusCode).toBe(204)
      home = (await site.app.inject({ url: '/' })).body
      expect(home).not.toContain('data-announcement')

      await schedule(site.app, BOSS, { mode: 'concurrent', startsAt: inMinutes(25 * 60), endsAt: inMinutes(26 * 60) })
      expect((await site.app.inject({ url: '/' })).body).not.toContain('data-announcement')
      const soon = (await schedule(site.app, BOSS, { mode: 'concurrent', startsAt: inMinutes(1), endsAt: inMinutes(5) })).json()
      // Less than a minute away still says "in 1 minute".
      expect((await site.app.inject({ url: '/' })).body).toContain(announcement('Concurrent (read-only) maintenance', soon, '1 minute'))
    })
  })

  describe('the switches', () => {
    it('at the start the site switches with the scheduler as maintainer until the end (Retry-After follows it); at the end back to normal; both switches audited', async () => {
      const window = (await schedule(site.app, BOSS, { mode: 'concurrent', reason: 'nightly reindex', startsAt: inMinutes(10), endsAt: inMinutes(40) })).json()
      const before = await stateRow(site.database)
      const logged = await logCount(site.database)

      // Not yet due: nothing happens.
      await site.app.maintenance.runSchedule(new Date(Date.parse(window.startsAt) - 1))
      expect(await stateRow(site.database)).toEqual(before)

      await site.app.maintenance.runSchedule(new Date(window.startsAt))
      const started = await stateRow(site.database)
      expect(started).toEqual({
        id: 1,
        mode: 'concurrent',
        maintainer: 'scheduler',
        reason: 'nightly reindex',
        since: window.startsAt,
        until: window.endsAt,
        version: before.version + 1,
        changed_by: 'scheduler',
        changed_at: window.startsAt,
      })
      expect(site.app.maintenance.state.version).toBe(started.version)
      expect(await windowRow(site, window.id)).toMatchObject({ state: 'active', started_version: started.version, note: null })
      expect(await logRowsAfter(site.database, logged)).toEqual([{
        id: expect.any(Number),
        at: window.startsAt,
        actor: 'scheduler',
        channel: 'scheduler',
        instance: 'windows-a',
        from_mode: 'normal',
        to_mode: 'concurrent',
        reason: 'nightly reindex',
        until: window.endsAt,
        expected_version: before.version,
        new_version: before.version + 1,
        outcome: 'applied',
        detail: null,
      }])
      expect(await readState(site.app, BOSS)).toMatchObject({ mode: 'concurrent', maintainer: 'scheduler', until: window.endsAt })

      // Members are read-only; Retry-After says when the window ends.
      const refused = await site.app.inject({ method: 'PUT', url: '/api/docs/during-window', headers: { authorization: ANN }, payload: { title: 'No', body: 'no' } })
      expect(refused.statusCode).toBe(503)
      expect(refused.json().code).toBe('QUIESCE_READ_ONLY')
      const expectedRetry = Math.ceil((Date.parse(window.endsAt) - Date.now()) / 1000)
      expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(expectedRetry - 2)
      expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(expectedRetry)
      expect((await site.app.inject({ url: '/' })).body).not.toContain('data-announcement')

      // Nobody else is the maintainer: another manager is refused, by the rules.
      const boss = await site.app.inject({ method: 'PUT', url: '/api/maintenance', headers: { authorization: BOSS }, payload: { mode: 'normal', expectedVersion: started.version } })
      expect(boss.statusCode).toBe(403)
      expect(boss.json().code).toBe('QUIESCE_NOT_MAINTAINER')
      const afterStart = await logCount(site.database)

      // Running the schedule again at the same time does nothing more.
      await site.app.maintenance.runSchedule(new Date(window.startsAt))
      expect(await stateRow(site.database)).toEqual(started)

      await site.app.maintenance.runSchedule(new Date(window.endsAt))
      const ended = await stateRow(site.database)
      expect(ended).toEqual({
        id: 1,
        mode: 'normal',
        maintainer: null,
        reason: null,
        since: window.endsAt,
        until: null,
        version: started.version + 1,
        changed_by: 'scheduler',
        changed_at: window.endsAt,
      })
      expect(await windowRow(site, window.id)).toMatchObject({ state: 'done', started_version: started.version, note: null })
      expect(await logRowsAfter(site.database, afterStart)).toEqual([{
        id: expect.any(Number),
        at: window.endsAt,
        actor: 'scheduler',
        channel: 'scheduler',
        instance: 'windows-a',
        from_mode: 'concurrent',
        to_mode: 'normal',
        reason: null,
        until: null,
        expected_version: started.version,
        new_version: started.version + 1,
        outcome: 'applied',
        detail: null,
      }])
      const saved = await site.app.inject({ method: 'PUT', url: '/api/docs/after-window', headers: { authorization: ANN }, payload: { title: 'Yes', body: 'yes' } })
      expect(saved.statusCode).toBe(201)
      // The other instance applies both changes.
      await until('the other instance to apply the end', () => other.maintenance.state.version === ended.version)
    })

    it('an exclusive window closes the site to members and visitors, and opens it at the end', async () => {
      const window = (await schedule(site.app, BOSS, { mode: 'exclusive', reason: 'upgrade', startsAt: inMinutes(10), endsAt: inMinutes(20) })).json()
      await site.app.maintenance.runSchedule(new Date(window.startsAt))
      const closed = await site.app.inject({ url: '/api/docs', headers: { authorization: ANN } })
      expect(closed.statusCode).toBe(503)
      expect(closed.json().code).toBe('QUIESCE_EXCLUSIVE')
      expect(closed.headers['quiesce-mode']).toBe('exclusive')
      // The emergency user gets through.
      expect((await site.app.inject({ url: '/api/docs', headers: { authorization: ROOT } })).statusCode).toBe(200)
      await site.app.maintenance.runSchedule(new Date(window.endsAt))
      expect((await site.app.inject({ url: '/api/docs', headers: { authorization: ANN } })).statusCode).toBe(200)
    })

    it('if the emergency user changed the state during the window, its end leaves the state alone and notes why', async () => {
      const window = (await schedule(site.app, BOSS, { mode: 'concurrent', reason: 'planned', startsAt: inMinutes(10), endsAt: inMinutes(40) })).json()
      await site.app.maintenance.runSchedule(new Date(window.startsAt))
      // The emergency user takes over and makes it exclusive.
      const takeover = await switchTo(site.app, ROOT, 'exclusive', { reason: 'it got worse' })
      const held = await stateRow(site.database)
      expect(held).toMatchObject({ mode: 'exclusive', maintainer: 'root', reason: 'it got worse', version: takeover.version })
      expect((await logRows(site.database)).at(-1)).toMatchObject({ actor: 'root', outcome: 'applied', detail: 'took over from scheduler' })
      const logged = await logCount(site.database)

      await site.app.maintenance.runSchedule(new Date(window.endsAt))
      expect(await stateRow(site.database)).toEqual(held)
      expect(await windowRow(site, window.id)).toMatchObject({ state: 'done', note: 'left as it was: changed by root after the start' })
      expect(await logCount(site.database)).toBe(logged)
      // The control panel shows why (once the emergency user has handed the site back).
      await switchTo(site.app, ROOT, 'normal')
      const boss = await signedInBrowser(site.app, 'maintainer')
      const panel = mainOf((await site.app.inject({ url: '/manage', headers: { cookie: boss.cookie } })).body)
      expect(panel).toContain('<td data-label="State">done <span class="meta">(left as it was: changed by root after the start)</span></td>')
    })

    it('a window whose start finds the site in someone else\'s maintenance is skipped, and the refused attempt is in the audit log', async () => {
      const window = (await schedule(site.app, BOSS, { mode: 'concurrent', reason: 'planned', startsAt: inMinutes(10), endsAt: inMinutes(40) })).json()
      await switchTo(site.app, BOSS, 'exclusive', { reason: 'unplanned' })
      const held = await stateRow(site.database)
      const logged = await logCount(site.database)

      await site.app.maintenance.runSchedule(new Date(window.startsAt))
      expect(await stateRow(site.database)).toEqual(held)
      expect(await windowRow(site, window.id)).toMatchObject({ state: 'skipped', started_version: null, note: 'not started: the maintainer is boss' })
      expect(await logRowsAfter(site.database, logged)).toEqual([{
        id: expect.any(Number),
        at: expect.stringMatching(ISO_TIMESTAMP),
        actor: 'scheduler',
        channel: 'scheduler',
        instance: 'windows-a',
        from_mode: 'exclusive',
        to_mode: 'concurrent',
        reason: 'planned',
        until: window.endsAt,
        expected_version: held.version,
        new_version: null,
        outcome: 'refused',
        detail: 'the maintainer is boss',
      }])
      // Its end does nothing either.
      await site.app.maintenance.runSchedule(new Date(window.endsAt))
      expect(await stateRow(site.database)).toEqual(held)
      expect(await logCount(site.database)).toBe(logged + 1)
    })

    it('a missed window (its start and end both passed with no instance running) is skipped with a note, without switching', async () => {
      const window = (await schedule(site.app, BOSS, { mode: 'exclusive', reason: 'missed', startsAt: inMinutes(10), endsAt: inMinutes(20) })).json()
      const before = await stateRow(site.database)
      const logged = await logCount(site.database)
      await site.app.maintenance.runSchedule(new Date(Date.parse(window.endsAt) + MINUTE))
      expect(await stateRow(site.database)).toEqual(before)
      expect(await windowRow(site, window.id)).toMatchObject({ state: 'skipped', started_version: null, note: 'missed: no instance was running between its start and its end' })
      expect(await logCount(site.database)).toBe(logged)
    })

    it('a window cancelled before its start never switches; one that started cannot be cancelled', async () => {
      const window = (await schedule(site.app, BOSS, { mode: 'concurrent', startsAt: inMinutes(10), endsAt: inMinutes(20) })).json()
      expect((await site.app.inject({ method: 'DELETE', url: `/api/maintenance/windows/${window.id}`, headers: { authorization: ANN } })).statusCode).toBe(403)
      expect((await site.app.inject({ method: 'DELETE', url: `/api/maintenance/windows/${window.id}` })).statusCode).toBe(401)
      const cancelled = await site.app.inject({ method: 'DELETE', url: `/api/maintenance/windows/${window.id}`, headers: { authorization: BOSS } })
      expect(cancelled.statusCode).toBe(204)
      expect((await windowRow(site, window.id)).state).toBe('cancelled')
      const before = await stateRow(site.database)
      await site.app.maintenance.runSchedule(new Date(window.startsAt))
      expect(await stateRow(site.database)).toEqual(before)
      expect((await windowRow(site, window.id)).state).toBe('cancelled')
      const again = await site.app.inject({ method: 'DELETE', url: `/api/maintenance/windows/${window.id}`, headers: { authorization: BOSS } })
      expect(again.statusCode).toBe(400)
      expect(again.json()).toEqual({ statusCode: 400, code: 'QUIESCE_INVALID_STATE_CHANGE', error: 'Bad Request', message: `window ${window.id} has started or ended already, or does not exist` })

      const active = (await schedule(site.app, BOSS, { mode: 'concurrent', startsAt: inMinutes(30), endsAt: inMinutes(40) })).json()
      await site.app.maintenance.runSchedule(new Date(active.startsAt))
      expect((await site.app.inject({ method: 'DELETE', url: `/api/maintenance/windows/${active.id}`, headers: { authorization: BOSS } })).statusCode).toBe(400)
      expect((await windowRow(site, active.id)).state).toBe('active')
      await site.app.maintenance.runSchedule(new Date(active.endsAt))
      expect((await readState(site.app)).mode).toBe('normal')
    })

    it('exactly one of two instances performs each switch when both run the schedule at once', async () => {
      for (let round = 0; round < 4; round++) {
        const window = (await schedule(site.app, BOSS, { mode: round % 2 === 0 ? 'concurrent' : 'exclusive', reason: `race ${round}`, startsAt: inMinutes(10 + round * 30), endsAt: inMinutes(30 + round * 30) })).json()
        const before = await stateRow(site.database)
        const logged = await logCount(site.database)

        await Promise.all([site.app.maintenance.runSchedule(new Date(window.startsAt)), other.maintenance.runSchedule(new Date(window.startsAt))])
        const started = await stateRow(site.database)
        expect(started.version).toBe(before.version + 1)
        const startRows = await logRowsAfter(site.database, logged)
        expect(startRows).toHaveLength(1)
        expect(startRows[0]).toMatchObject({ actor: 'scheduler', channel: 'scheduler', to_mode: window.mode, outcome: 'applied', new_version: before.version + 1 })
        expect(['windows-a', 'windows-b']).toContain(startRows[0]!.instance)
        expect(await windowRow(site, window.id)).toMatchObject({ state: 'active', started_version: started.version })

        await Promise.all([other.maintenance.runSchedule(new Date(window.endsAt)), site.app.maintenance.runSchedule(new Date(window.endsAt))])
        const ended = await stateRow(site.database)
        expect(ended).toMatchObject({ mode: 'normal', version: started.version + 1, changed_by: 'scheduler' })
        const endRows = await logRowsAfter(site.database, logged + 1)
        expect(endRows).toHaveLength(1)
        expect(endRows[0]).toMatchObject({ actor: 'scheduler', channel: 'scheduler', from_mode: window.mode, to_mode: 'normal', outcome: 'applied', expected_version: started.version, new_version: started.version + 1 })
        expect(await windowRow(site, window.id)).toMatchObject({ state: 'done', note: null })
        await until('both instances to apply the end', () => site.app.maintenance.state.version === ended.version && other.maintenance.state.version === ended.version)
      }
    })
  })
})
