import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import BetterSqlite3 from 'better-sqlite3'
import type { FastifyBaseLogger } from 'fastify'
import { Kysely, sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDatabase, type Database } from '../app/db/database.js'
import type { DB } from '../app/db/schema.js'
import { betterSqliteDialect } from '../app/db/sqlite-driver.js'
import { transactionBeginningWith } from '../app/db/transactions.js'
import { ConflictError } from '../app/errors.js'
import { UnitOfWorkEngine } from '../app/unit-of-work/unit-of-work.js'
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from './helpers/databases.js'

/**
 * The commit guard's state read goes with its transaction's BEGIN (issue 10 item 2): the first
 * statement must be part of the transaction, its effects and locks kept or dropped with it.
 */
describe.each(DATABASE_KINDS)('a transaction beginning with a statement, on %s', (kind) => {
  let testDatabase: TestDatabase
  let database: Database

  beforeAll(async () => {
    testDatabase = await createTestDatabase(kind)
    database = await openDatabase(testDatabase.url)
    await sql`create table first_statement (n integer not null)`.execute(database.writer)
  })
  afterAll(async () => {
    await database?.destroy()
    await testDatabase?.drop()
  })

  const count = async () => Number((await sql<{ n: number | string }>`select count(*) as n from first_statement`.execute(database.writer)).rows[0]!.n)

  it('gives the first statement\'s rows to the work, and commits both', async () => {
    const before = await count()
    const result = await transactionBeginningWith(database.writer, 'insert into first_statement (n) values (1) returning n', async (transaction, rows) => {
      await sql`insert into first_statement (n) values (2)`.execute(transaction)
      return rows
    })
    expect(result).toEqual([{ n: 1 }])
    expect(await count()).toBe(before + 2)
  })

  it('rolls the first statement back with the work: it ran inside the transaction, not before it', async () => {
    const before = await count()
    await expect(transactionBeginningWith(database.writer, 'insert into first_statement (n) values (3) returning n', async (transaction) => {
      await sql`insert into first_statement (n) values (4)`.execute(transaction)
      throw new Error('vetoed')
    })).rejects.toThrow('vetoed')
    expect(await count()).toBe(before)
  })

  it('fails with the first statement\'s own error, and leaves the connection usable', async () => {
    await expect(transactionBeginningWith(database.writer, 'select * from no_such_table', async () => 'never')).rejects.toThrow(/no_such_table/)
    for (let i = 0; i < 12; i++) expect(await transactionBeginningWith(database.writer, 'select 1 as one', async (_transaction, rows) => rows)).toEqual([{ one: 1 }])
  })
})

describe('on postgres', () => {
  let testDatabase: TestDatabase
  let database: Database

  beforeAll(async () => {
    testDatabase = await createTestDatabase('postgres')
    database = await openDatabase(testDatabase.url)
  })
  afterAll(async () => {
    await database?.destroy()
    await testDatabase?.drop()
  })

  it('the first statement and the work share one transaction, whose row lock lasts until it ends', async () => {
    let release = () => {}
    const held = new Promise<void>((resolve) => { release = resolve })
    let entered = () => {}
    const inWork = new Promise<void>((resolve) => { entered = resolve })
    const done = transactionBeginningWith(database.writer, 'select txid_current() as id from maintenance_state where id = 1 for share', async (transaction, rows) => {
      const { rows: [own] } = await sql<{ id: string }>`select txid_current() as id`.execute(transaction)
      entered()
      await held
      return [(rows[0] as { id: string }).id, own!.id]
    })
    await inWork
    // The first statement's row lock is held while the work runs.
    const locked = await sql<{ n: string }>`select count(*) as n from pg_locks l join pg_class c on c.oid = l.relation
      where c.relname = 'maintenance_state' and l.mode = 'RowShareLock' and l.granted`.execute(database.reader)
    expect(Number(locked.rows[0]!.n)).toBeGreaterThan(0)
    release()
    const [first, work] = await done
    expect(first).toBe(work)
  })
})

describe('a commit guard at the BEGIN, on sqlite, when another connection holds the write lock', () => {
  it('is a conflict, retried, not an unreadable state', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'quiesce-busy-'))
    const file = path.join(dir, 'busy.sqlite')
    await (await openDatabase({ kind: 'sqlite', file })).destroy()
    const holder = new BetterSqlite3(file)
    holder.exec('create table t (n integer)')
    const writer = new Kysely<DB>({ dialect: betterSqliteDialect({ connect: () => new BetterSqlite3(file), lockTimeoutMs: 100 }) })
    const log = { debug () {}, warn () {}, error () {} } as unknown as FastifyBaseLogger
    const engine = new UnitOfWorkEngine({ writer, reader: writer, attempts: 2, log })
    let judged = 0
    engine.guardAtBegin({ statement: 'select 1 as one', judge () { judged++ }, unreadable: () => new Error('unreadable') })
    try {
      holder.exec('begin immediate')
      const attempt = engine.run(null, async (unitOfWork) => {
        unitOfWork.stage(async (transaction) => { await sql`insert into t (n) values (1)`.execute(transaction) })
      })
      await expect(attempt).rejects.toBeInstanceOf(ConflictError)
      expect(judged).toBe(0)
      // Once the lock is free, the same commit goes through.
      holder.exec('rollback')
      await engine.run(null, async (unitOfWork) => {
        unitOfWork.stage(async (transaction) => { await sql`insert into t (n) values (2)`.execute(transaction) })
      })
      expect(judged).toBe(1)
      expect(holder.prepare('select n from t').all()).toEqual([{ n: 2 }])
    } finally {
      await writer.destroy()
      holder.close()
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
