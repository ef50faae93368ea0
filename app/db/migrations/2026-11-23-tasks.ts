import { sql, type Kysely } from 'kysely'
import { isSqlite, serialPrimaryKey } from './dialect.js'

export async function up (db: Kysely<any>): Promise<void> {
  const sqlite = isSqlite(db)
  // Long-running work (reindex, export) and its progress, resumable from `checkpoint`.
  await db.schema.createTable('task')
    .addColumn('id', serialPrimaryKey(db), (c) => sqlite ? c.primaryKey().autoIncrement() : c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull().check(sql`state in ('queued', 'running', 'paused', 'cancelling', 'cancelled', 'done', 'failed')`))
    .addColumn('done', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('total', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('checkpoint', 'text')
    .addColumn('started_by', 'text', (c) => c.notNull())
    .addColumn('started_by_role', 'text', (c) => c.notNull())
    .addColumn('started_at', 'text', (c) => c.notNull())
    .addColumn('heartbeat_at', 'text')
    .addColumn('owner', 'text')
    .addColumn('finished_at', 'text')
    .addColumn('error', 'text')
    .addColumn('batches', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('conflicts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('retries', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('result', 'text')
    .execute()
  await db.schema.createIndex('task_state').on('task').column('state').execute()

  // One row per committed unit of work (the newest are kept): an export records the last one
  // it contains, in a form that survives a move between SQLite and PostgreSQL.
  await db.schema.createTable('commit_log')
    .addColumn('id', serialPrimaryKey(db), (c) => sqlite ? c.primaryKey().autoIncrement() : c.primaryKey())
    .addColumn('at', 'text', (c) => c.notNull())
    .addColumn('actor', 'text')
    .execute()
}

export async function down (db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('commit_log').execute()
  await db.schema.dropTable('task').execute()
}
