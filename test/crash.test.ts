import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { catalogFor } from '../app/content/catalog.js'
import { countDocuments } from '../app/content/documents.js'
import { seedDocuments } from '../app/content/seed.js'
import { openDatabase, type Database } from '../app/db/database.js'
import { READ_ONLY_REINDEX_BATCH } from '../app/tasks/reindex.js'
import { addUser, basicAuth } from './helpers/app.js'
import { cliEnv } from './helpers/cli.js'
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from './helpers/databases.js'
import { expectCatalogAgrees, expectNothingLost, expectSearchFinds, writeFigures } from './helpers/faults.js'
import { httpRequest } from './helpers/http.js'
import { addPrincipals, basicOf } from './helpers/principals.js'
import { ServerProcess } from './helpers/server-process.js'
import { taskRow, until } from './helpers/tasks.js'
import { checkWrites, WriteLoad } from './helpers/write-load.js'

const BOSS = basicOf('maintainer')
const MEMBERS = [basicOf('member'), basicAuth('bob', 'bob-password')]
/** Enough documents that a reindex is still running when the test kills its instance. */
// Several read-only batches (READ_ONLY_REINDEX_BATCH), so that the reindex can be killed mid-way.
const SEEDED = 5000
/** Kills of an instance under write load before the maintenance part (QUIESCE_TEST_CRASH_ROUNDS for a longer run). */
const ROUNDS = Number(process.env.QUIESCE_TEST_CRASH_ROUNDS ?? 1)

const figures: Record<string, unknown> = {}

/**
 * `kill -9` of real `quiesce serve` processes, two instances on one database, under write load:
 * after each restart every acknowledged write is there, no unit of work is half-applied (each
 * document and its catalog entry agree), a reindex killed mid-way resumes from its checkpoint,
 * and the maintenance state acknowledged just before a kill is intact.
 */
describe.each(DATABASE_KINDS)('kill -9 of an instance on %s', (kind) => {
  let testDatabase: TestDatabase
  let database: Database
  let servers: ServerProcess[]
  let kills = 0

  beforeAll(async () => {
    testDatabase = await createTestDatabase(kind)
    database = await openDatabase(testDatabase.url)
    await addPrincipals({ database }, ['maintainer', 'member'])
    await addUser(database, 'bob', 'member')
    await seedDocuments(database.writer, catalogFor(kind), SEEDED)
    const { QUIESCE_DATA_DIR, QUIESCE_DATABASE_URL } = cliEnv(testDatabase)
    const env: Record<string, string> = { QUIESCE_DATA_DIR: QUIESCE_DATA_DIR!, QUIESCE_DATABASE_URL: QUIESCE_DATABASE_URL!, QUIESCE_SESSION_SECRET: 'a crash test secret that is at least thirty-two characters' }
    servers = ['crash-a', 'crash-b'].map((name) => new ServerProcess(name, { ...env, QUIESCE_INSTANCE_ID: name }))
    await Promise.all(servers.map((server) => server.start()))
  }, 120_000)

  afterAll(async () => {
    await Promise.all((servers ?? []).map((server) => server.stop()))
    await database?.destroy()
    await testDatabase?.drop()
    console.info(`kill -9 figures (${kind})`, { kills, ...figures })
  })

  async function crash (server: ServerProcess): Promise<void> {
    await server.kill9()
    kills++
  }

  it('loses no acknowledged write, half-applies nothing, resumes a killed reindex and keeps the maintenance state', async () => {
    const [a, b] = servers as [ServerProcess, ServerProcess]
    const load = new WriteLoad({
      targets: () => servers.filter((s) => s.listening).map((s) => s.url),
      authorization: (writer) => MEMBERS[writer % 2]!,
      writers: 6,
      docsPerWriter: 4,
      prefix: `crash${kind}`,
    })
    load.start()
    onTestFinished(() => load.stop())

    // Under write load: an instance dies at once; the load goes on on the other while it restarts.
    let restarting: Promise<void> = Promise.resolve()
    for (let round = 0; round < ROUNDS; round++) {
      await restarting
      await load.acknowledged(150)
      await crash(a)
      restarting = a.start()
      await load.acknowledged(50)
    }

    // The maintainer switches to Concurrent on the other instance, which dies right after it
    // acknowledged the switch (for a moment both are down).
    const before = JSON.parse((await httpRequest(`${b.url}/api/maintenance`)).body) as { version: number }
    const switched = await httpRequest(`${b.url}/api/maintenance`, { method: 'PUT', headers: { authorization: BOSS }, body: { mode: 'concurrent', reason: 'crash drill', expectedVersion: before.version } })
    expect(switched.status, switched.body).toBe(200)
    const acknowledged = JSON.parse(switched.body) as { mode: string, version: number, maintainer: string, reason: string }
    const switchedAt = Date.now()
    await crash(b)
    const restartingB = b.start()
    await restarting
    const enforced = async (server: ServerProcess) => {
      const state = await until(`${server.name} to enforce the switch`, async () => {
        const seen = JSON.parse((await httpRequest(`${server.url}/api/maintenance`, { headers: { authorization: BOSS } })).body) as typeof acknowledged
        return seen.version === acknowledged.version ? seen : undefined
      })
      expect(state).toMatchObject({ mode: 'concurrent', version: acknowledged.version, maintainer: 'boss', reason: 'crash drill' })
    }
    await enforced(a)

    // The maintainer's reindex (the members' writes are refused meanwhile): the instance that runs it dies mid-way.
    const started = await httpRequest(`${a.url}/api/tasks/reindex`, { method: 'POST', headers: { authorization: BOSS } })
    expect(started.status, started.body).toBe(202)
    const id = (JSON.parse(started.body) as { id: number }).id
    const running = await until('the reindex to be a few batches in', async () => {
      const row = await taskRow(database, id)
      if (row.state === 'done') throw new Error('the reindex finished before it could be killed: seed more documents')
      return row.state === 'running' && row.done > 0 && row.owner !== null ? row : undefined
    }, 60_000)
    const owner = servers.find((server) => server.env.QUIESCE_INSTANCE_ID === running.owner)!
    await crash(owner)
    const atKill = await taskRow(database, id)
    expect(atKill.state).toBe('running')
    expect(atKill.done).toBeGreaterThan(0)
    expect(atKill.done).toBeLessThan(atKill.total)
    await Promise.all([owner.start(), restartingB])
    await enforced(b)
    const task = await until('the reindex to finish', async () => {
      const row = await taskRow(database, id)
      return ['done', 'failed', 'cancelled'].includes(row.state) ? row : undefined
    }, 60_000)
    expect(task.state, task.error ?? '').toBe('done')
    // Resumed, not started over: it went on from the batch after the last one that landed.
    const documents = await countDocuments(database.writer)
    expect(task.done).toBe(documents)
    expect(task.batches).toBe(Math.ceil(documents / READ_ONLY_REINDEX_BATCH))
    figures.reindex = { total: task.total, doneAtKill: atKill.done, checkpointAtKill: atKill.checkpoint, done: task.done, batches: task.batches }

    await load.stop()
    const check = await checkWrites(database, load.attempts)
    figures.writes = writeFigures(check)
    const refusedBy: Record<string, number> = {}
    for (const attempt of load.attempts) if (attempt.outcome === 'refused') refusedBy[attempt.code ?? String(attempt.status)] = (refusedBy[attempt.code ?? String(attempt.status)] ?? 0) + 1
    figures.refusedBy = refusedBy
    expectNothingLost(check)
    // No member's write sent after the switch was acknowledged commits, whichever instance took it.
    const afterSwitch = load.attempts.filter((attempt) => attempt.startedAt > switchedAt)
    expect(afterSwitch.length).toBeGreaterThan(0)
    expect(afterSwitch.filter((attempt) => attempt.outcome === 'acked')).toEqual([])
    // The state row is what was acknowledged.
    expect(await database.writer.selectFrom('maintenance_state').select(['mode', 'maintainer', 'version', 'reason']).executeTakeFirstOrThrow())
      .toEqual({ mode: 'concurrent', maintainer: 'boss', version: acknowledged.version, reason: 'crash drill' })
    await expectCatalogAgrees(database)
    await expectSearchFinds(a.url, check)
    for (const server of servers) expect(server.logLines(50), server.name).toEqual([])
  }, 240_000)
})
