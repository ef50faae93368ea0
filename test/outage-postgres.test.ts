import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { buildApp } from '../app/app.js'
import { openDatabase, type Database } from '../app/db/database.js'
import { addUser, testConfig } from './helpers/app.js'
import { httpRequest } from './helpers/http.js'
import { PostgresServer } from './helpers/postgres-server.js'
import { deferred, until } from './helpers/tasks.js'

/**
 * PostgreSQL outages, on a throwaway server of the test's own: stopped with `-m immediate` (what
 * clients see of a crash), restarted, and frozen with SIGSTOP (a hung or cut-off server).
 */
describe('a PostgreSQL outage', () => {
  let server: PostgresServer
  let database: Database
  let app: FastifyInstance
  let base: string
  let dataDir: string

  beforeAll(async () => {
    server = await PostgresServer.create()
    const url = await server.createDatabase('quiesce')
    dataDir = mkdtempSync(path.join(tmpdir(), 'quiesce-outage-'))
    const config = testConfig({ url: { kind: 'postgres', url }, dataDir, drop: async () => {} }, { instanceId: 'outage-instance' })
    database = await openDatabase(config.database)
    await addUser(database, 'boss', 'manager')
    await addUser(database, 'deputy', 'manager')
    await addUser(database, 'ann', 'member')
    app = await buildApp({ config, database, tasks: { pollMs: 100, heartbeatMs: 200 } })
    await app.listen({ host: '127.0.0.1', port: 0 })
    base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  })

  afterAll(async () => {
    await app?.close()
    await server?.destroy()
    rmSync(dataDir, { recursive: true, force: true })
  })

  async function restart (): Promise<void> {
    if (!server.running) await server.start()
    await until('/healthz to say ok', async () => (await httpRequest(`${base}/healthz`)).status === 200, 20_000)
  }

  it('a connection cut in the middle of a transaction ends that request with an error, not the process', async () => {
    const gate = deferred()
    const commit = app.unitOfWork.run({ name: 'boss', role: 'manager' }, async (unitOfWork) => {
      unitOfWork.stage(async (transaction) => {
        await transaction.insertInto('commit_log').values({ at: new Date().toISOString(), actor: 'cut' }).execute()
        await gate.promise
        await transaction.insertInto('commit_log').values({ at: new Date().toISOString(), actor: 'cut' }).execute()
      })
    }).then(() => undefined, (err: unknown) => err as { code?: string, statusCode?: number })
    await until('the commit to be between two statements', async () => (await server.query<{ n: string }>("select count(*) as n from pg_stat_activity where state = 'idle in transaction' and application_name = 'quiesce'", 'quiesce'))[0]!.n === '1')
    await server.stop('immediate')
    onTestFinished(restart)
    // The connection, checked out by the commit, learns that it was cut while nobody waits on it.
    await new Promise((resolve) => setTimeout(resolve, 200))
    gate.resolve()
    const outcome = await commit
    expect(outcome).toBeInstanceOf(Error)
    await restart()
    expect(await database.writer.selectFrom('commit_log').select('id').where('actor', '=', 'cut').execute()).toEqual([])
  })
})
