import { Readable } from 'node:stream'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { USAGE, main } from '../app/cli/main.js'
import { openDatabase, type Database } from '../app/db/database.js'
import { kyselyMaintenanceStore } from '../app/maintenance/index.js'
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from './helpers/databases.js'
import { addOperators, capture, cliEnv, type Run } from './helpers/cli.js'
import { logCount, logRowsAfter, stateRow } from './helpers/maintenance.js'

describe.each(DATABASE_KINDS)('quiesce status and quiesce mode on %s', (kind) => {
  let testDatabase: TestDatabase
  let database: Database
  let env: NodeJS.ProcessEnv

  beforeAll(async () => {
    testDatabase = await createTestDatabase(kind)
    env = cliEnv(testDatabase)
    database = await openDatabase(testDatabase.url)
    await addOperators(database, testDatabase)
  })
  afterAll(async () => {
    await database?.destroy()
    await testDatabase?.drop()
  })
  // The emergency user can always bring the site back; each test starts from normal.
  afterEach(async () => {
    if ((await stateRow(database)).mode !== 'normal') expect((await quiesce(['mode', 'normal', '--as', 'root'])).code).toBe(0)
  })

  /** Runs `quiesce ...argv` in this process, as a script would. */
  async function quiesce (argv: string[]): Promise<Run> {
    const stdout = capture()
    const stderr = capture()
    const code = await main(argv, { stdin: Readable.from(['']), stdout: stdout.stream, stderr: stderr.stream, env })
    return { code, stdout: stdout.text(), stderr: stderr.text() }
  }

  function describeLines (state: { mode: string, maintainer: string | null, reason: string | null, since: string, until: string | null, version: number }, label: string): string {
    return [
      `mode:        ${state.mode} (${label})`,
      `maintainer:  ${state.maintainer ?? '-'}`,
      `reason:      ${state.reason ?? '-'}`,
      `since:       ${state.since}`,
      `until:       ${state.until ?? '-'}`,
      `version:     ${state.version}`,
    ].join('\n') + '\n'
  }

  describe('status', () => {
    it('prints mode, maintainer, reason, since, until and version; no instances when none runs', async () => {
      const state = await stateRow(database)
      const run = await quiesce(['status'])
      expect(run).toEqual({ code: 0, stdout: describeLines(state, 'Normal') + 'instances:   none running\n', stderr: '' })
    })

    it('lists the registered instances and whether each applied the current version', async () => {
      const state = await stateRow(database)
      const store = kyselyMaintenanceStore(database.writer)
      const heartbeatAt = new Date().toISOString()
      const base = { startedAt: heartbeatAt, heartbeatAt, requestsInFlight: 2, writesInFlight: 1, details: null }
      await store.heartbeat({ ...base, id: 'web-1', address: '10.0.0.1:3000', stateVersion: state.version }, '1970-01-01T00:00:00.000Z')
      await store.heartbeat({ ...base, id: 'web-2', address: null, stateVersion: state.version - 1 }, '1970-01-01T00:00:00.000Z')
      try {
        const run = await quiesce(['status'])
        expect(run.code).toBe(0)
        expect(run.stdout).toBe(describeLines(state, 'Normal') + [
          'instances:   ',
          `  web-1  10.0.0.1:3000  heartbeat ${heartbeatAt}  applied  requests 2  writes 1`,
          `  web-2  -  heartbeat ${heartbeatAt}  behind (v${state.version - 1})  requests 2  writes 1`,
        ].join('\n') + '\n')

        const json = await quiesce(['status', '--json'])
        expect(json.code).toBe(0)
        expect(JSON.parse(json.stdout)).toEqual({
          mode: 'normal',
          maintainer: null,
          reason: null,
          since: state.since,
          until: null,
          version: state.version,
          changedBy: state.changed_by,
          changedAt: state.changed_at,
          instances: [
            { id: 'web-1', address: '10.0.0.1:3000', startedAt: heartbeatAt, heartbeatAt, stateVersion: state.version, requestsInFlight: 2, writesInFlight: 1, details: null },
            { id: 'web-2', address: null, startedAt: heartbeatAt, heartbeatAt, stateVersion: state.version - 1, requestsInFlight: 2, writesInFlight: 1, details: null },
          ],
        })
      } finally {
        await store.removeInstance('web-1')
        await store.removeInstance('web-2')
      }
    })

    it('--json shows the maintainer while the site is in maintenance', async () => {
      expect((await quiesce(['mode', 'exclusive', '--as', 'boss', '--reason', 'Backup'])).code).toBe(0)
      const json = await quiesce(['status', '--json'])
      expect(json.code).toBe(0)
      expect(JSON.parse(json.stdout)).toMatchObject({ mode: 'exclusive', maintainer: 'boss', reason: 'Backup', changedBy: 'boss', instances: [] })
      expect((await quiesce(['status'])).stdout).toContain('mode:        exclusive (Exclusive)\nmaintainer:  boss\nreason:      Backup\n')
    })

    it('takes no arguments', async () => {
      const run = await quiesce(['status', 'now'])
      expect(run.code).toBe(2)
      expect(run.stderr).toBe(`quiesce: expected status [--json]\n\n${USAGE}\n`)
    })
  })

  describe('mode', () => {
    it('a manager switches: exit 0, the new state on stdout, the state row, and a cli log row from this instance', async () => {
      const before = await stateRow(database)
      const logged = await logCount(database)
      const until = new Date(Date.now() + 2 * 3600_000)
      const untilText = `${until.toISOString().slice(0, 19)}Z`

      const run = await quiesce(['mode', 'concurrent', '--as', 'boss', '--reason', 'x', '--until', untilText])

      const after = await stateRow(database)
      expect(after).toMatchObject({ mode: 'concurrent', maintainer: 'boss', reason: 'x', until: `${untilText.slice(0, 19)}.000Z`, version: before.version + 1, changed_by: 'boss' })
      expect(run).toEqual({ code: 0, stdout: describeLines(after, 'Concurrent (read-only)'), stderr: '' })
      expect(await logRowsAfter(database, logged)).toEqual([{
        id: expect.any(Number),
        at: after.changed_at,
        actor: 'boss',
        channel: 'cli',
        instance: 'ops-laptop',
        from_mode: 'normal',
        to_mode: 'concurrent',
        reason: 'x',
        until: after.until,
        expected_version: before.version,
        new_version: before.version + 1,
        outcome: 'applied',
        detail: null,
      }])
    })

    it('a member is refused: exit 1, the reason on stderr, a refused log row', async () => {
      const before = await stateRow(database)
      const logged = await logCount(database)
      const run = await quiesce(['mode', 'exclusive', '--as', 'ann'])
      expect(run).toEqual({ code: 1, stdout: '', stderr: 'quiesce: Only managers and the emergency user may change maintenance mode\n' })
      expect(await stateRow(database)).toEqual(before)
      expect(await logRowsAfter(database, logged)).toEqual([expect.objectContaining({
        actor: 'ann', channel: 'cli', instance: 'ops-laptop', from_mode: 'normal', to_mode: 'exclusive', outcome: 'refused', new_version: null, detail: 'ann is not a manager',
      })])
    })

    it('another manager is refused while the site is concurrent: exit 1, naming the maintainer', async () => {
      expect((await quiesce(['mode', 'concurrent', '--as', 'boss'])).code).toBe(0)
      const before = await stateRow(database)
      const logged = await logCount(database)
      const run = await quiesce(['mode', 'normal', '--as', 'deputy'])
      expect(run).toEqual({ code: 1, stdout: '', stderr: 'quiesce: Only the maintainer (boss) or the emergency user may change maintenance now\n' })
      expect(await stateRow(database)).toEqual(before)
      expect(await logRowsAfter(database, logged)).toEqual([expect.objectContaining({
        actor: 'deputy', channel: 'cli', outcome: 'refused', detail: 'the maintainer is boss',
      })])
    })

    it('the emergency user from the access file takes over: exit 0, and the log says from whom', async () => {
      expect((await quiesce(['mode', 'concurrent', '--as', 'boss', '--reason', 'Reindex'])).code).toBe(0)
      const logged = await logCount(database)
      const run = await quiesce(['mode', 'exclusive', '--as', 'root', '--reason', 'Taking over'])
      expect(run.code).toBe(0)
      expect(run.stdout).toContain('mode:        exclusive (Exclusive)\nmaintainer:  root\nreason:      Taking over\n')
      expect(await stateRow(database)).toMatchObject({ mode: 'exclusive', maintainer: 'root' })
      expect(await logRowsAfter(database, logged)).toEqual([expect.objectContaining({
        actor: 'root', channel: 'cli', from_mode: 'concurrent', to_mode: 'exclusive', outcome: 'applied', detail: 'took over from boss',
      })])
    })

    it('an unknown name: exit 1, nothing changed, nobody to log', async () => {
      const before = await stateRow(database)
      const logged = await logCount(database)
      const run = await quiesce(['mode', 'concurrent', '--as', 'nobody'])
      expect(run).toEqual({ code: 1, stdout: '', stderr: 'quiesce: there is no user or emergency user named nobody\n' })
      expect(await stateRow(database)).toEqual(before)
      expect(await logCount(database)).toBe(logged)
    })

    it('an expected end in the past or not a date: exit 1, with the reason, and a refused log row', async () => {
      const before = await stateRow(database)
      const logged = await logCount(database)
      const past = await quiesce(['mode', 'concurrent', '--as', 'boss', '--until', '2020-01-01T00:00:00Z'])
      expect(past).toEqual({ code: 1, stdout: '', stderr: 'quiesce: the expected end must be in the future\n' })
      const garbage = await quiesce(['mode', 'concurrent', '--as', 'boss', '--until', 'soon'])
      expect(garbage).toEqual({ code: 1, stdout: '', stderr: 'quiesce: the expected end must be an ISO-8601 date and time, like 2026-11-22T14:00:00Z\n' })
      expect(await stateRow(database)).toEqual(before)
      expect((await logRowsAfter(database, logged)).map((row) => [row.actor, row.channel, row.outcome, row.until])).toEqual([
        ['boss', 'cli', 'refused', '2020-01-01T00:00:00.000Z'],
        ['boss', 'cli', 'refused', 'soon'],
      ])
    })

    it('normal while normal: exit 1', async () => {
      const run = await quiesce(['mode', 'normal', '--as', 'boss'])
      expect(run).toEqual({ code: 1, stdout: '', stderr: 'quiesce: the site is already in normal mode\n' })
    })

    it('bad usage exits 2 with the usage, and changes and logs nothing', async () => {
      const before = await stateRow(database)
      const logged = await logCount(database)
      for (const [argv, message] of [
        [['mode', 'closed', '--as', 'boss'], 'MODE must be normal, concurrent or exclusive'],
        [['mode', 'concurrent'], '--as NAME is required: the manager or emergency user who switches'],
        [['mode', 'concurrent', '--as', ''], '--as NAME is required: the manager or emergency user who switches'],
        [['mode', '--as', 'boss'], 'expected mode MODE --as NAME'],
        [['mode', 'concurrent', 'exclusive', '--as', 'boss'], 'expected mode MODE --as NAME'],
      ] as const) {
        const run = await quiesce([...argv])
        expect(run, argv.join(' ')).toEqual({ code: 2, stdout: '', stderr: `quiesce: ${message}\n\n${USAGE}\n` })
      }
      const unknownOption = await quiesce(['mode', 'concurrent', '--as', 'boss', '--force'])
      expect(unknownOption.code).toBe(2)
      expect(unknownOption.stderr).toContain("Unknown option '--force'")
      expect(await stateRow(database)).toEqual(before)
      expect(await logCount(database)).toBe(logged)
    })
  })
})
