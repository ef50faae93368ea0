import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { basicAuth, startTestSite, type TestSite } from './helpers/app.js'
import { DATABASE_KINDS } from './helpers/databases.js'
import { backToNormal, expectRecent, fromNow, logCount, logRows, logRowsAfter, putState, readState, stateRow, switchTo } from './helpers/maintenance.js'
import { addPrincipals, basicOf } from './helpers/principals.js'

const BOSS = basicOf('maintainer')
const DEPUTY = basicOf('manager')
const ANN = basicOf('member')
const ROOT = basicOf('emergency')

describe.each(DATABASE_KINDS)('the maintenance JSON API on %s', (kind) => {
  let site: TestSite

  beforeAll(async () => {
    site = await startTestSite(kind)
    await addPrincipals(site, ['maintainer', 'manager', 'member', 'emergency'])
  })
  afterAll(async () => { await site.close() })
  // The emergency user can always bring the site back, whoever the maintainer is.
  afterEach(async () => { await backToNormal(site.app, ROOT) })

  function get (url: string, authorization?: string, headers: Record<string, string> = {}) {
    return site.app.inject({ url, headers: authorization === undefined ? headers : { authorization, ...headers } })
  }

  describe('GET /api/maintenance', () => {
    it('is open to everyone and shows the maintainer to managers and the emergency user only', async () => {
      const normal = await get('/api/maintenance')
      expect(normal.statusCode).toBe(200)
      expect(normal.headers['quiesce-mode']).toBe('normal')
      const row = await stateRow(site.database)
      expect(normal.json()).toEqual({ mode: 'normal', version: row.version, since: row.since, reason: null, until: null, maintainer: null })

      const switched = await switchTo(site.app, BOSS, 'concurrent', { reason: 'Reindexing the catalog' })
      const shown = { mode: 'concurrent', version: switched.version, since: switched.since, reason: 'Reindexing the catalog', until: null }
      for (const [who, authorization, maintainer] of [
        ['visitor', undefined, null],
        ['member', ANN, null],
        ['other manager', DEPUTY, 'boss'],
        ['maintainer', BOSS, 'boss'],
        ['emergency user', ROOT, 'boss'],
      ] as const) {
        const response = await get('/api/maintenance', authorization)
        expect(response.statusCode, who).toBe(200)
        expect(response.headers['quiesce-mode'], who).toBe('concurrent')
        expect(response.json(), who).toEqual({ ...shown, maintainer })
      }
    })

    it('stays open in exclusive mode, for visitors and members too', async () => {
      await switchTo(site.app, BOSS, 'exclusive', { reason: 'Backup' })
      for (const authorization of [undefined, ANN, DEPUTY]) {
        const response = await get('/api/maintenance', authorization)
        expect(response.statusCode).toBe(200)
        expect(response.headers['quiesce-mode']).toBe('exclusive')
        expect(response.json()).toMatchObject({ mode: 'exclusive', reason: 'Backup' })
      }
    })
  })

  describe('PUT /api/maintenance', () => {
    it('lets a manager switch; the answer is the new state, the row stores it, and one applied log row records it', async () => {
      const before = Date.now()
      const { version } = await readState(site.app)
      const logged = await logCount(site.database)

      const response = await putState(site.app, BOSS, { mode: 'concurrent', reason: '  Reindexing the catalog  ', expectedVersion: version })

      expect(response.statusCode).toBe(200)
      // The header says the mode as the response leaves: the new one.
      expect(response.headers['quiesce-mode']).toBe('concurrent')
      const state = response.json()
      expect(state).toEqual({ mode: 'concurrent', version: version + 1, since: expect.any(String), reason: 'Reindexing the catalog', until: null, maintainer: 'boss' })
      expectRecent(state.since, before)
      expect(await stateRow(site.database)).toEqual({
        id: 1,
        mode: 'concurrent',
        maintainer: 'boss',
        reason: 'Reindexing the catalog',
        since: state.since,
        until: null,
        version: version + 1,
        changed_by: 'boss',
        changed_at: state.since,
      })
      expect(await logRowsAfter(site.database, logged)).toEqual([{
        id: expect.any(Number),
        at: state.since,
        actor: 'boss',
        channel: 'api',
        instance: 'test-instance',
        from_mode: 'normal',
        to_mode: 'concurrent',
        reason: 'Reindexing the catalog',
        until: null,
        expected_version: version,
        new_version: version + 1,
        outcome: 'applied',
        detail: null,
      }])
      // This instance applies it at once: the gate and /healthz see it.
      expect((await get('/healthz')).json()).toMatchObject({ mode: 'concurrent', version: version + 1 })
      expect((await get('/')).headers['quiesce-mode']).toBe('concurrent')
    })

    it('stores an expected end in UTC and a blank reason as none', async () => {
      const until = new Date(Math.ceil(Date.now() / 1000) * 1000 + 2 * 3600_000)
      const withOffset = `${new Date(until.getTime() + 2 * 3600_000).toISOString().slice(0, 19)}+02:00`
      const state = await switchTo(site.app, BOSS, 'exclusive', { reason: '   ', until: withOffset })
      expect(state).toMatchObject({ mode: 'exclusive', reason: null, until: until.toISOString() })
      expect(await stateRow(site.database)).toMatchObject({ reason: null, until: until.toISOString() })
      const [row] = (await logRows(site.database)).slice(-1)
      expect(row).toMatchObject({ outcome: 'applied', reason: null, until: until.toISOString() })
    })

    it('the maintainer changes reason and expected end without moving since; the log records from and to', async () => {
      const switched = await switchTo(site.app, BOSS, 'concurrent', { reason: 'Reindexing' })
      const logged = await logCount(site.database)
      const until = fromNow(3600)
      const response = await putState(site.app, BOSS, { mode: 'concurrent', reason: 'Reindexing, half done', until, expectedVersion: switched.version })
      expect(response.statusCode).toBe(200)
      expect(response.json()).toEqual({ ...switched, reason: 'Reindexing, half done', until, version: switched.version + 1 })
      expect(await logRowsAfter(site.database, logged)).toEqual([expect.objectContaining({
        actor: 'boss', from_mode: 'concurrent', to_mode: 'concurrent', reason: 'Reindexing, half done', until, outcome: 'applied', detail: null,
      })])
    })

    it('refuses a member with 403 QUIESCE_NOT_MANAGER, changes nothing, and logs the refused attempt', async () => {
      const before = await stateRow(site.database)
      const logged = await logCount(site.database)

      const response = await putState(site.app, ANN, { mode: 'exclusive', reason: 'I want it quiet', expectedVersion: before.version })

      expect(response.statusCode).toBe(403)
      expect(response.headers['content-type']).toBe('application/json; charset=utf-8')
      expect(response.json()).toEqual({
        statusCode: 403,
        code: 'QUIESCE_NOT_MANAGER',
        error: 'Forbidden',
        message: 'Only managers and the emergency user may change maintenance mode',
      })
      expect(await stateRow(site.database)).toEqual(before)
      expect(await logRowsAfter(site.database, logged)).toEqual([{
        id: expect.any(Number),
        at: expect.any(String),
        actor: 'ann',
        channel: 'api',
        instance: 'test-instance',
        from_mode: 'normal',
        to_mode: 'exclusive',
        reason: 'I want it quiet',
        until: null,
        expected_version: before.version,
        new_version: null,
        outcome: 'refused',
        detail: 'ann is not a manager',
      }])
    })

    it('refuses a visitor (or wrong credentials) with 401 QUIESCE_UNAUTHORIZED; there is nobody to log', async () => {
      const before = await stateRow(site.database)
      const logged = await logCount(site.database)
      for (const authorization of [undefined, basicAuth('boss', 'not-the-password')]) {
        const response = await putState(site.app, authorization, { mode: 'exclusive', expectedVersion: before.version })
        expect(response.statusCode).toBe(401)
        expect(response.json()).toEqual({ statusCode: 401, code: 'QUIESCE_UNAUTHORIZED', error: 'Unauthorized', message: 'Sign in to do this' })
      }
      expect(await stateRow(site.database)).toEqual(before)
      expect(await logCount(site.database)).toBe(logged)
    })

    it('refuses another manager while the site is concurrent with 403 QUIESCE_NOT_MAINTAINER naming the maintainer, and logs it', async () => {
      await switchTo(site.app, BOSS, 'concurrent', { reason: 'Reindexing' })
      const before = await stateRow(site.database)
      const logged = await logCount(site.database)

      const response = await putState(site.app, DEPUTY, { mode: 'normal', expectedVersion: before.version })

      expect(response.statusCode).toBe(403)
      expect(response.json()).toEqual({
        statusCode: 403,
        code: 'QUIESCE_NOT_MAINTAINER',
        error: 'Forbidden',
        message: 'Only the maintainer (boss) or the emergency user may change maintenance now',
        maintainer: 'boss',
      })
      expect(await stateRow(site.database)).toEqual(before)
      expect(await logRowsAfter(site.database, logged)).toEqual([expect.objectContaining({
        actor: 'deputy',
        channel: 'api',
        instance: 'test-instance',
        from_mode: 'concurrent',
        to_mode: 'normal',
        reason: null,
        expected_version: before.version,
        new_version: null,
        outcome: 'refused',
        detail: 'the maintainer is boss',
      })])
    })

    it('refuses a change based on a stale version with 409 QUIESCE_STATE_CONFLICT and the current state, and logs it', async () => {
      const { version: old } = await readState(site.app)
      const switched = await switchTo(site.app, BOSS, 'concurrent', { reason: 'Reindexing' })
      const logged = await logCount(site.database)

      const response = await putState(site.app, BOSS, { mode: 'exclusive', reason: 'Backup', expectedVersion: old })

      expect(response.statusCode).toBe(409)
      expect(response.json()).toEqual({
        statusCode: 409,
        code: 'QUIESCE_STATE_CONFLICT',
        error: 'Conflict',
        message: `The maintenance state changed meanwhile: it is at version ${old + 1}, not ${old}; look at it again and retry`,
        state: switched,
      })
      expect(await stateRow(site.database)).toMatchObject({ mode: 'concurrent', version: old + 1, reason: 'Reindexing' })
      expect(await logRowsAfter(site.database, logged)).toEqual([expect.objectContaining({
        actor: 'boss',
        from_mode: 'concurrent',
        to_mode: 'exclusive',
        reason: 'Backup',
        expected_version: old,
        new_version: null,
        outcome: 'refused',
        detail: `based on version ${old}, but it is at ${old + 1}`,
      })])
    })

    it('answers 400 QUIESCE_INVALID_INPUT to a malformed body, and logs each attempt as refused', async () => {
      const before = await stateRow(site.database)
      const logged = await logCount(site.database)
      for (const [payload, message, fields] of [
        [{ mode: 'concurrent' }, "body must have required property 'expectedVersion'", { expectedVersion: "must have required property 'expectedVersion'" }],
        [{ mode: 'closed', expectedVersion: before.version }, 'body/mode must be equal to one of the allowed values', { mode: 'must be equal to one of the allowed values' }],
        [{ mode: 'concurrent', expectedVersion: 'latest' }, 'body/expectedVersion must be integer', { expectedVersion: 'must be integer' }],
        [{ mode: 'concurrent', reason: 'r'.repeat(501), expectedVersion: before.version }, 'body/reason must NOT have more than 500 characters', { reason: 'must NOT have more than 500 characters' }],
      ] as const) {
        const response = await putState(site.app, BOSS, payload)
        expect(response.statusCode, message).toBe(400)
        expect(response.json()).toEqual({ statusCode: 400, code: 'QUIESCE_INVALID_INPUT', error: 'Bad Request', message, fields })
      }
      expect(await stateRow(site.database)).toEqual(before)
      // Every attempt is audited, a malformed one too (PRODUCT §2.1), with what was wrong.
      const rows = await logRowsAfter(site.database, logged)
      expect(rows.map((row) => [row.actor, row.channel, row.outcome, row.new_version, row.detail])).toEqual([
        ['boss', 'api', 'refused', null, "body must have required property 'expectedVersion'"],
        ['boss', 'api', 'refused', null, 'body/mode must be equal to one of the allowed values'],
        ['boss', 'api', 'refused', null, 'body/expectedVersion must be integer'],
        ['boss', 'api', 'refused', null, 'body/reason must NOT have more than 500 characters'],
      ])
      expect(rows.map((row) => [row.to_mode, row.expected_version])).toEqual([['concurrent', 0], ['closed', before.version], ['concurrent', 0], ['concurrent', before.version]])
    })

    it('refuses an expected end in the past, or not a date, with 400 QUIESCE_INVALID_STATE_CHANGE, and logs it', async () => {
      const before = await stateRow(site.database)
      const logged = await logCount(site.database)
      const anHourAgo = new Date(Date.now() - 3600_000)
      // An hour ago written in +05:00: as text it sorts after now, as a time it is past.
      const anHourAgoInPlusFive = `${new Date(anHourAgo.getTime() + 5 * 3600_000).toISOString().slice(0, 19)}+05:00`
      for (const [until, message] of [
        ['2020-01-01T00:00:00Z', 'the expected end must be in the future'],
        [anHourAgoInPlusFive, 'the expected end must be in the future'],
        ['tomorrow at noon', 'the expected end must be an ISO-8601 date and time, like 2026-11-22T14:00:00Z'],
      ]) {
        const response = await putState(site.app, BOSS, { mode: 'concurrent', until, expectedVersion: before.version })
        expect(response.statusCode, until).toBe(400)
        expect(response.json()).toEqual({ statusCode: 400, code: 'QUIESCE_INVALID_STATE_CHANGE', error: 'Bad Request', message })
      }
      expect(await stateRow(site.database)).toEqual(before)
      const rows = await logRowsAfter(site.database, logged)
      expect(rows.map((row) => [row.actor, row.outcome, row.new_version, row.until, row.detail])).toEqual([
        ['boss', 'refused', null, '2020-01-01T00:00:00.000Z', 'the expected end must be in the future'],
        ['boss', 'refused', null, new Date(Math.floor(anHourAgo.getTime() / 1000) * 1000).toISOString(), 'the expected end must be in the future'],
        ['boss', 'refused', null, 'tomorrow at noon', 'the expected end must be an ISO-8601 date and time, like 2026-11-22T14:00:00Z'],
      ])
    })

    it('lets the emergency user (Basic credentials) take over; the log says from whom, and the former maintainer is refused', async () => {
      await switchTo(site.app, BOSS, 'concurrent', { reason: 'Reindexing' })
      const before = await stateRow(site.database)
      const logged = await logCount(site.database)

      const response = await putState(site.app, ROOT, { mode: 'concurrent', reason: 'Reindex stuck; taking over', expectedVersion: before.version })

      expect(response.statusCode).toBe(200)
      expect(response.json()).toEqual({
        mode: 'concurrent',
        version: before.version + 1,
        since: before.since,
        reason: 'Reindex stuck; taking over',
        until: null,
        maintainer: 'root',
      })
      expect(await stateRow(site.database)).toMatchObject({ maintainer: 'root', changed_by: 'root', version: before.version + 1 })
      expect(await logRowsAfter(site.database, logged)).toEqual([expect.objectContaining({
        actor: 'root',
        channel: 'api',
        from_mode: 'concurrent',
        to_mode: 'concurrent',
        expected_version: before.version,
        new_version: before.version + 1,
        outcome: 'applied',
        detail: 'took over from boss',
      })])

      const refused = await putState(site.app, BOSS, { mode: 'normal', expectedVersion: before.version + 1 })
      expect(refused.statusCode).toBe(403)
      expect(refused.json()).toMatchObject({ code: 'QUIESCE_NOT_MAINTAINER', maintainer: 'root' })
    })

    it('writes exactly one log row per attempt, applied or refused, in order', async () => {
      const logged = await logCount(site.database)
      const { version } = await readState(site.app)
      await putState(site.app, ANN, { mode: 'concurrent', expectedVersion: version })
      await putState(site.app, BOSS, { mode: 'concurrent', expectedVersion: version })
      await putState(site.app, DEPUTY, { mode: 'exclusive', expectedVersion: version + 1 })
      await putState(site.app, BOSS, { mode: 'exclusive', expectedVersion: version })
      await putState(site.app, BOSS, { mode: 'normal', expectedVersion: version + 1 })
      const rows = await logRowsAfter(site.database, logged)
      expect(rows.map((row) => [row.actor, row.from_mode, row.to_mode, row.outcome, row.new_version])).toEqual([
        ['ann', 'normal', 'concurrent', 'refused', null],
        ['boss', 'normal', 'concurrent', 'applied', version + 1],
        ['deputy', 'concurrent', 'exclusive', 'refused', null],
        ['boss', 'concurrent', 'exclusive', 'refused', null],
        ['boss', 'concurrent', 'normal', 'applied', version + 2],
      ])
      expect(new Set(rows.map((row) => row.channel))).toEqual(new Set(['api']))
      expect(new Set(rows.map((row) => row.instance))).toEqual(new Set(['test-instance']))
    })
  })

  describe('GET /api/maintenance/log', () => {
    it('lists audit entries newest first, as many as asked for, and pages with before', async () => {
      const { version } = await readState(site.app)
      await putState(site.app, DEPUTY, { mode: 'exclusive', expectedVersion: version + 5 })
      await switchTo(site.app, BOSS, 'concurrent', { reason: 'Paging test' })
      await switchTo(site.app, BOSS, 'normal')
      const rows = (await logRows(site.database)).reverse()
      const asEntry = (row: typeof rows[number]) => ({
        id: row.id,
        at: row.at,
        actor: row.actor,
        channel: row.channel,
        instance: row.instance,
        fromMode: row.from_mode,
        toMode: row.to_mode,
        reason: row.reason,
        until: row.until,
        expectedVersion: row.expected_version,
        newVersion: row.new_version,
        outcome: row.outcome,
        detail: row.detail,
      })

      const first = await get('/api/maintenance/log?limit=3', BOSS)
      expect(first.statusCode).toBe(200)
      expect(first.json()).toEqual({ entries: rows.slice(0, 3).map(asEntry) })
      expect(first.json().entries.map((entry: { actor: string, outcome: string }) => `${entry.actor} ${entry.outcome}`))
        .toEqual(['boss applied', 'boss applied', 'deputy refused'])

      const second = await get(`/api/maintenance/log?limit=2&before=${rows[2]!.id}`, ROOT)
      expect(second.statusCode).toBe(200)
      expect(second.json()).toEqual({ entries: rows.slice(3, 5).map(asEntry) })

      const all = await get('/api/maintenance/log', BOSS)
      expect(all.json()).toEqual({ entries: rows.slice(0, 50).map(asEntry) })
    })

    it('refuses a bad limit with 400', async () => {
      for (const query of ['limit=0', 'limit=501', 'limit=ten', 'before=0']) {
        const response = await get(`/api/maintenance/log?${query}`, BOSS)
        expect(response.statusCode, query).toBe(400)
        expect(response.json()).toMatchObject({ statusCode: 400, code: 'QUIESCE_INVALID_INPUT', error: 'Bad Request' })
      }
    })

    it('is for managers only: a member gets 403, a visitor 401', async () => {
      const member = await get('/api/maintenance/log', ANN)
      expect(member.statusCode).toBe(403)
      expect(member.json()).toEqual({ statusCode: 403, code: 'QUIESCE_NOT_MANAGER', error: 'Forbidden', message: 'Only managers and the emergency user may read the maintenance log' })
      const visitor = await get('/api/maintenance/log')
      expect(visitor.statusCode).toBe(401)
      expect(visitor.json()).toEqual({ statusCode: 401, code: 'QUIESCE_UNAUTHORIZED', error: 'Unauthorized', message: 'Sign in to do this' })
    })
  })

  describe('GET /api/instances', () => {
    it('lists this instance, which applies the current version soon after a change', async () => {
      const switched = await switchTo(site.app, BOSS, 'concurrent', { reason: 'Instances' })
      await expect.poll(async () => (await get('/api/instances', BOSS)).json(), { timeout: 3000, interval: 20 }).toEqual({
        version: switched.version,
        instances: [{
          id: 'test-instance',
          address: null,
          startedAt: expect.any(String),
          heartbeatAt: expect.any(String),
          stateVersion: switched.version,
          requestsInFlight: expect.any(Number),
          writesInFlight: expect.any(Number),
          details: { database: kind === 'sqlite' ? { kind: 'sqlite', role: 'file', label: 'SQLite file' } : { kind: 'postgres', role: 'primary', label: 'PostgreSQL primary' } },
          stale: false,
          applied: true,
        }],
      })
    })

    it('is for managers only: a member gets 403, a visitor 401', async () => {
      const member = await get('/api/instances', ANN)
      expect(member.statusCode).toBe(403)
      expect(member.json()).toEqual({ statusCode: 403, code: 'QUIESCE_NOT_MANAGER', error: 'Forbidden', message: 'Only managers and the emergency user may see the instances' })
      const visitor = await get('/api/instances')
      expect(visitor.statusCode).toBe(401)
      expect(visitor.json()).toMatchObject({ code: 'QUIESCE_UNAUTHORIZED' })
    })
  })

  describe('GET /healthz', () => {
    it('answers status, mode, version and instance, in every mode', async () => {
      const { version } = await readState(site.app)
      const normal = await get('/healthz')
      expect(normal.statusCode).toBe(200)
      expect(normal.json()).toEqual({ status: 'ok', mode: 'normal', version, instance: 'test-instance' })

      for (const mode of ['concurrent', 'exclusive'] as const) {
        const switched = await switchTo(site.app, ROOT, mode)
        const response = await get('/healthz')
        expect(response.statusCode).toBe(200)
        expect(response.headers['quiesce-mode']).toBe(mode)
        expect(response.json()).toEqual({ status: 'ok', mode, version: switched.version, instance: 'test-instance' })
      }
    })
  })

  describe('headers', () => {
    const requests = [
      { what: 'a page', url: '/', headers: {} },
      { what: 'an HTML 404', url: '/no-such-page', headers: {} },
      { what: 'a JSON 404', url: '/api/no-such-thing', headers: {} },
      { what: 'a static file', url: '/static/quiesce.css', headers: {} },
      { what: 'the state', url: '/api/maintenance', headers: {} },
      { what: 'health', url: '/healthz', headers: {} },
      { what: 'a 401', url: '/api/maintenance/log', headers: {} },
      { what: 'a 400', url: '/api/maintenance/log?limit=0', headers: { authorization: BOSS } },
    ]

    it('every response carries quiesce-mode, whatever its status, in every mode', async () => {
      for (const mode of ['normal', 'concurrent', 'exclusive'] as const) {
        if (mode !== 'normal') await switchTo(site.app, BOSS, mode)
        for (const { what, url, headers } of requests) {
          const response = await site.app.inject({ url, headers })
          expect(response.headers['quiesce-mode'], `${what} in ${mode}`).toBe(mode)
        }
      }
      const css = await get('/static/quiesce.css')
      expect(css.statusCode).toBe(200)
    })

    it('a 401 for wrong Basic credentials, refused before the maintenance gate runs, carries quiesce-mode too', async () => {
      await switchTo(site.app, BOSS, 'concurrent')
      const response = await get('/api/maintenance', basicAuth('boss', 'not-the-password'))
      expect(response.statusCode).toBe(401)
      expect(response.json()).toMatchObject({ code: 'QUIESCE_UNAUTHORIZED' })
      expect(response.headers['quiesce-mode']).toBe('concurrent')
    })

    it('a 503 without an expected end carries the configured default retry-after', async () => {
      expect(site.config.retryAfterSeconds).toBe(300)
      await switchTo(site.app, BOSS, 'concurrent')
      const readOnly = await site.app.inject({ method: 'PUT', url: '/api/docs/retry-after-test', headers: { authorization: ANN }, payload: { title: 'T', body: 'B' } })
      expect(readOnly.statusCode).toBe(503)
      expect(readOnly.json()).toMatchObject({ code: 'QUIESCE_READ_ONLY' })
      expect(readOnly.headers['retry-after']).toBe('300')
      expect(readOnly.headers['quiesce-mode']).toBe('concurrent')

      await switchTo(site.app, BOSS, 'exclusive')
      const closed = await get('/', ANN)
      expect(closed.statusCode).toBe(503)
      expect(closed.headers['retry-after']).toBe('300')
      expect(closed.headers['quiesce-mode']).toBe('exclusive')
    })

    it('a 503 with an expected end carries the seconds until then', async () => {
      await switchTo(site.app, BOSS, 'concurrent', { until: fromNow(600) })
      const readOnly = await site.app.inject({ method: 'PUT', url: '/api/docs/retry-after-test', headers: { authorization: ANN }, payload: { title: 'T', body: 'B' } })
      expect(readOnly.statusCode).toBe(503)
      expect(Number(readOnly.headers['retry-after'])).toBeGreaterThanOrEqual(598)
      expect(Number(readOnly.headers['retry-after'])).toBeLessThanOrEqual(600)

      await switchTo(site.app, BOSS, 'exclusive', { until: fromNow(1800) })
      for (const url of ['/', '/api/docs']) {
        const closed = await get(url)
        expect(closed.statusCode, url).toBe(503)
        expect(Number(closed.headers['retry-after']), url).toBeGreaterThanOrEqual(1798)
        expect(Number(closed.headers['retry-after']), url).toBeLessThanOrEqual(1800)
      }
    })
  })
})
