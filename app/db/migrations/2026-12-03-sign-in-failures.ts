import type { Kysely } from 'kysely'
import { isSqlite, serialPrimaryKey } from './dialect.js'

export async function up (db: Kysely<any>): Promise<void> {
  // Failed sign-ins, by form or HTTP Basic, so that managers see who is guessing at passwords.
  await db.schema.createTable('sign_in_failure')
    .addColumn('id', serialPrimaryKey(db), (c) => isSqlite(db) ? c.primaryKey().autoIncrement() : c.primaryKey())
    .addColumn('at', 'text', (c) => c.notNull())
    .addColumn('account', 'text', (c) => c.notNull())
    .addColumn('address', 'text', (c) => c.notNull())
    .addColumn('channel', 'text', (c) => c.notNull())
    .addColumn('instance', 'text', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('sign_in_failure_at').on('sign_in_failure').column('at').execute()
}

export async function down (db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('sign_in_failure').execute()
}
