import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import { expect } from 'vitest'
import { catalogFor } from '../../app/content/catalog.js'
import { openDatabase, type Database } from '../../app/db/database.js'
import type { UnitOfWork } from '../../app/unit-of-work/unit-of-work.js'
import type { RequestPrincipal } from '../../app/unit-of-work/plugin.js'
import { createTestDatabase, type DatabaseKind } from './databases.js'

export { deferred, until } from './wait.js'

export const FINISHED = ['done', 'failed', 'cancelled']

/** The task row as stored, with its JSON columns parsed. */
export async function taskRow (database: Database, id: number) {
  const row = await database.writer.selectFrom('task').selectAll().where('id', '=', id).executeTakeFirstOrThrow()
  return { ...row, checkpoint: row.checkpoint === null ? null : JSON.parse(row.checkpoint), result: row.result === null ? null : JSON.parse(row.result) }
}

/** A batch of a task, as the unit of work engine commits it. */
export interface BatchCommit {
  /** 1-based, counted over every commit of task batches since the last reset (retries included). */
  n: number
  attempt: number
  principal: string
  uow: UnitOfWork
}

/** The task row right after a batch committed. */
export interface BatchProgress {
  id: number
  done: number
  total: number
  batches: number
  conflicts: number
  retries: number
  checkpoint: unknown
}

/**
 * Watches the commits of task batches on one instance: the app's unit-of-work engine is
 * wrapped so that a test can act between a batch's read and its commit (`before`), and sees
 * the task's persisted progress after each batch. A task batch is a unit of work with staged
 * writes by one of `taskPrincipals` (the suites never edit documents as those people).
 */
export class BatchWatch {
  readonly commits: BatchCommit[] = []
  readonly progress: BatchProgress[] = []
  before: ((commit: BatchCommit) => Promise<void>) | undefined

  constructor (readonly taskPrincipals: ReadonlySet<string>) {}

  reset (): void {
    this.commits.length = 0
    this.progress.length = 0
    this.before = undefined
  }

  /** Call in `configure` (before the app is ready). */
  install (app: FastifyInstance): void {
    const engine = app.unitOfWork
    const commit = engine.commit.bind(engine)
    engine.commit = async (uow: UnitOfWork<RequestPrincipal>) => {
      const name = uow.principal?.name
      if (!uow.hasWrites || name === undefined || !this.taskPrincipals.has(name)) return commit(uow)
      const batch: BatchCommit = { n: this.commits.length + 1, attempt: uow.attempt, principal: name, uow }
      this.commits.push(batch)
      await this.before?.(batch)
      await commit(uow)
      const row = await app.db.writer.selectFrom('task').selectAll()
        .where('owner', '=', app.config.instanceId).where('state', 'in', ['running', 'cancelling'])
        .orderBy('id', 'desc').executeTakeFirst()
      if (row !== undefined) {
        this.progress.push({
          id: row.id,
          done: row.done,
          total: row.total,
          batches: row.batches,
          conflicts: row.conflicts,
          retries: row.retries,
          checkpoint: row.checkpoint === null ? null : JSON.parse(row.checkpoint),
        })
      }
    }
  }
}

/** Every catalog entry, by document id: what search reads (PostgreSQL: with the search vector). */
export async function catalogRows (database: Database): Promise<Array<Record<string, unknown>>> {
  if (database.kind === 'sqlite') {
    return (await sql<Record<string, unknown>>`select rowid as id, slug, title, body from catalog order by rowid`.execute(database.writer)).rows
  }
  return (await sql<Record<string, unknown>>`select document_id as id, slug, title, body, search::text as search from catalog order by document_id`.execute(database.writer)).rows
}

/**
 * The reference: a new database of the same kind with the same documents (same ids, same
 * order) and a catalog built from them in one go. Answers each query and lists its catalog.
 */
export async function freshBuild (kind: DatabaseKind, source: Database, queries: readonly string[], limit = 100) {
  const testDatabase = await createTestDatabase(kind)
  const database = await openDatabase(testDatabase.url)
  try {
    const docs = await source.writer.selectFrom('document').selectAll().orderBy('id').execute()
    const catalog = catalogFor(kind)
    await database.writer.transaction().execute(async (transaction) => {
      for (let i = 0; i < docs.length; i += 100) await transaction.insertInto('document').values(docs.slice(i, i + 100)).execute()
      await catalog.insertMany(transaction, docs.map((doc) => ({ documentId: doc.id, slug: doc.slug, title: doc.title, body: doc.body })))
    })
    const answers: Record<string, unknown> = {}
    for (const query of queries) answers[query] = JSON.parse(JSON.stringify(await catalog.search(database.reader, query, limit)))
    return { answers, rows: await catalogRows(database), documents: docs.length }
  } finally {
    await database.destroy()
    await testDatabase.drop()
  }
}

/** What `/api/search` answers for each query. */
export async function searchAnswers (app: FastifyInstance, queries: readonly string[], limit = 100): Promise<Record<string, unknown>> {
  const answers: Record<string, unknown> = {}
  for (const query of queries) {
    const response = await app.inject({ url: `/api/search?q=${encodeURIComponent(query)}&limit=${limit}` })
    expect(response.statusCode, query).toBe(200)
    answers[query] = response.json().hits
  }
  return answers
}
