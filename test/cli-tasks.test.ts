import { Readable } from 'node:stream'
import { sql } from 'kysely'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../app/app.js'
import { main } from '../app/cli/main.js'
import { catalogFor } from '../app/content/catalog.js'
import { seedDocuments } from '../app/content/seed.js'
import { openDatabase, type Database } from '../app/db/database.js'
import { READ_ONLY_REINDEX_BATCH } from '../app/tasks/reindex.js'
import { testConfig } from './helpers/app.js'
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from './helpers/databases.js'
import { addOperators, capture, cliEnv } from './helpers/cli.js'
import { stateRow } from './helpers/maintenance.js'
import { catalogRows, freshBuild, taskRow, until } from './helpers/tasks.js'

const DOCS = 200
/** A progress line of `quiesce reindex` when stderr is not a terminal. */
const PROGRESS_LINE = /^reindex: (\d+)\/(\d+) \((\d+)%\) (queued|running|paused|done), \d+\/s(, about \d+ s left)?, (\d+) conflicts$/

describe.each(DATABASE_KINDS)('quiesce reindex on %s', (kind) => {
  let testDatabase: TestDatabase
  let database: Database
  let env: NodeJS.ProcessEnv

  beforeAll(async () => {
    testDatabase = await createTestDatabase(kind)
    env = cliEnv(testDatabase)
    database = await openDatabase(testDatabase.url)
    await addOperators(database, testDatabase)
    expect(await seedDocuments(database.writer, catalogFor(kind), DOCS)).toBe(DOCS)
  })
  afterAll(async () => {
    await database?.destroy()
    await testDatabase?.drop()
  })
  afterEach(async () => {
    if ((await stateRow(database)).mode !== 'normal') expect((await quiesce(['mode', 'normal', '--as', 'root'])).code).toBe(0)
  })

  /** Runs `quiesce ...argv` in this process, as a script would (stderr not a terminal unless `tty`). */
  async function quiesce (argv: string[], options: { tty?: boolean, stderr?: ReturnType<typeof capture> } = {}) {
    const stdout = capture()
    const stderr = options.stderr ?? capture(options.tty)
    const code = await main(argv, { stdin: Readable.from(['']), stdout: stdout.stream, stderr: stderr.stream, env })
    return { code, stdout: stdout.text(), stderr: stderr.text() }
  }

  async function lastTaskId (): Promise<number | undefined> {
    const row = await database.writer.selectFrom('task').select('id').orderBy('id', 'desc').executeTakeFirst()
    return row?.id
  }

  async function damage (): Promise<void> {
    if (kind === 'sqlite') {
      await sql`delete from catalog where rowid in (5, 150)`.execute(database.writer)
      await sql`update catalog set title = 'Corrupted', body = 'xylophone' where rowid = 77`.execute(database.writer)
    } else {
      await sql`delete from catalog where document_id in (5, 150)`.execute(database.writer)
      await sql`update catalog set title = 'Corrupted', body = 'xylophone', search = to_tsvector('english', 'Corrupted xylophone') where document_id = 77`.execute(database.writer)
    }
  }

  /** Checks the output of a reindex that ran as `as`; returns the task id. */
  /** `readOnly`: the site is not in normal mode, so the batches are of READ_ONLY_REINDEX_BATCH documents. */
  function expectReindexOutput (run: { code: number | undefined, stdout: string, stderr: string }, as: string, readOnly = false): number {
    expect(run.code, run.stderr).toBe(0)
    const lines = run.stderr.split('\n')
    expect(lines.pop()).toBe('')
    const started = /^reindex task (\d+) started as (.+)$/.exec(lines[0]!)
    expect(started, lines[0]).not.toBeNull()
    expect(started![2]).toBe(as)
    const progress = lines.slice(1)
    expect(progress.length).toBeGreaterThanOrEqual(1)
    for (const line of progress) expect(line).toMatch(PROGRESS_LINE)
    // Plain lines: no progress bar, no cursor movement.
    expect(run.stderr).not.toContain('\u001b')
    expect(run.stderr).not.toContain('\r')
    // The counts only grow, and the last line is the finished task.
    const dones = progress.map((line) => Number(PROGRESS_LINE.exec(line)![1]))
    expect(dones).toEqual([...dones].sort((a, b) => a - b))
    expect(progress.at(-1)).toMatch(new RegExp(`^reindex: ${DOCS}/${DOCS} \\(100%\\) done, \\d+/s, 0 conflicts$`))
    // Two full batches of 100, then one that finds no document: a batch is the last one when it
    // is not full, so with a multiple of 100 documents an empty batch ends the run (and removes
    // any catalog entries after the last document). Read-only, one batch of 1,000 holds them all.
    expect(DOCS).toBeLessThan(READ_ONLY_REINDEX_BATCH)
    expect(run.stdout).toBe(`reindexed ${DOCS} documents in ${readOnly ? 1 : 3} batches (0 conflicts, 0 retries)\n`)
    return Number(started![1])
  }

  it('rebuilds the catalog: exit 0, plain progress lines on a stderr that is not a terminal, a summary on stdout', async () => {
    await damage()
    const run = await quiesce(['reindex'])
    const id = expectReindexOutput(run, 'cli')
    expect(await taskRow(database, id)).toMatchObject({
      kind: 'reindex', state: 'done', done: DOCS, total: DOCS, batches: 3, started_by: 'cli', started_by_role: 'manager', owner: 'ops-laptop', error: null,
    })
    // The search answers as a fresh build's, and the command's instance is gone from the registry.
    const fresh = await freshBuild(kind, database, ['xylophone'])
    expect(await catalogRows(database)).toEqual(fresh.rows)
    expect(await database.writer.selectFrom('maintenance_instance').select('id').execute()).toEqual([])
  })

  it('--as NAME runs it as that manager or emergency user; an unknown name or a member is refused with 1; extra words are a usage error', async () => {
    const asBoss = await quiesce(['reindex', '--as', 'boss'])
    expect((await taskRow(database, expectReindexOutput(asBoss, 'boss'))).started_by).toBe('boss')
    const asRoot = await quiesce(['reindex', '--as', 'root'])
    expect(await taskRow(database, expectReindexOutput(asRoot, 'root'))).toMatchObject({ started_by: 'root', started_by_role: 'emergency' })

    const before = await lastTaskId()
    const unknown = await quiesce(['reindex', '--as', 'nobody'])
    expect(unknown).toEqual({ code: 1, stdout: '', stderr: 'quiesce: there is no user or emergency user named nobody\n' })
    const member = await quiesce(['reindex', '--as', 'ann'])
    expect(member).toEqual({ code: 1, stdout: '', stderr: 'quiesce: ann is a member: only managers and the emergency user may start a reindex\n' })
    expect(await lastTaskId()).toBe(before)

    const usage = await quiesce(['reindex', 'now'])
    expect(usage.code).toBe(2)
    expect(usage.stderr).toMatch(/^quiesce: expected reindex \[--as NAME\]\n/)
    const option = await quiesce(['reindex', '--as'])
    expect(option.code).toBe(2)
  })

  it('during concurrent maintenance it runs as the maintainer without --as, and completes while the site stays read-only', async () => {
    expect((await quiesce(['mode', 'concurrent', '--as', 'boss', '--reason', 'catalog rebuild'])).code).toBe(0)
    const run = await quiesce(['reindex'])
    const id = expectReindexOutput(run, 'boss', true)
    expect(await taskRow(database, id)).toMatchObject({ state: 'done', started_by: 'boss', started_by_role: 'manager', done: DOCS, conflicts: 0, batches: 1 })
    expect(await stateRow(database)).toMatchObject({ mode: 'concurrent', maintainer: 'boss' })
    // In exclusive mode under the emergency user, the same.
    expect((await quiesce(['mode', 'exclusive', '--as', 'root'])).code).toBe(0)
    expectReindexOutput(await quiesce(['reindex']), 'root', true)
  })

  it('during a scheduled window it runs as the scheduler, the window\'s maintainer', async () => {
    const config = testConfig(testDatabase, { instanceId: 'scheduling-host' })
    const app = await buildApp({ config, database: await openDatabase(config.database) })
    await app.ready()
    try {
      const startsAt = new Date(Date.now() + 10 * 60_000).toISOString()
      const endsAt = new Date(Date.now() + 40 * 60_000).toISOString()
      await app.maintenance.scheduleWindow({ name: 'boss', canManage: true, isEmergency: false }, { mode: 'concurrent', reason: 'nightly reindex', startsAt, endsAt })
      await app.maintenance.runSchedule(new Date(startsAt))
    } finally {
      await app.close()
    }
    expect(await stateRow(database)).toMatchObject({ mode: 'concurrent', maintainer: 'scheduler' })
    const run = await quiesce(['reindex'])
    const id = expectReindexOutput(run, 'scheduler', true)
    expect(await taskRow(database, id)).toMatchObject({ state: 'done', started_by: 'scheduler', started_by_role: 'manager', done: DOCS })
    expect(await stateRow(database)).toMatchObject({ mode: 'concurrent', maintainer: 'scheduler' })
    // No user of that name can be named with --as.
    expect(await quiesce(['reindex', '--as', 'scheduler'])).toEqual({ code: 1, stdout: '', stderr: 'quiesce: there is no user or emergency user named scheduler\n' })
  })

  it('run as someone who is not the maintainer, it says paused until the site is back to normal, then completes', async () => {
    expect((await quiesce(['mode', 'concurrent', '--as', 'boss'])).code).toBe(0)
    const stderr = capture()
    const running = quiesce(['reindex', '--as', 'deputy'], { stderr })
    await until('the command to say the task is paused', () => /^reindex: 0\/200 \(0%\) paused, 0\/s, 0 conflicts$/m.test(stderr.text()))
    expect(await taskRow(database, (await lastTaskId())!)).toMatchObject({ state: 'paused', done: 0, started_by: 'deputy' })
    expect((await quiesce(['mode', 'normal', '--as', 'boss'])).code).toBe(0)
    const run = await running
    expectReindexOutput(run, 'deputy')
    expect(run.stderr).toMatch(/^reindex: 0\/200 \(0%\) paused/m)
  })

  it('on a terminal it draws a progress bar instead of lines', async () => {
    const run = await quiesce(['reindex'], { tty: true })
    expect(run.code, run.stderr).toBe(0)
    expect(run.stderr).toMatch(/^reindex task \d+ started as cli\n/)
    expect(run.stderr).toContain(`${DOCS}/${DOCS} documents`)
    expect(run.stderr).toMatch(/Reindex \|[█░]+\| 100%/)
    expect(run.stderr).not.toMatch(/^reindex: /m)
    expect(run.stdout).toBe(`reindexed ${DOCS} documents in 3 batches (0 conflicts, 0 retries)\n`)
  })
})
