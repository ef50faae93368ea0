import { sql, type Kysely } from 'kysely'
import { isSqlite, serialPrimaryKey } from './dialect.js'

export async function up (db: Kysely<any>): Promise<void> {
  const sqlite = isSqlite(db)
  await db.schema.createTable('app_user')
    .addColumn('id', serialPrimaryKey(db), (c) => sqlite ? c.primaryKey().autoIncrement() : c.primaryKey())
    .addColumn('username', 'text', (c) => c.notNull().unique())
    .addColumn('password_hash', 'text', (c) => c.notNull())
    .addColumn('role', 'text', (c) => c.notNull().check(sql`role in ('member', 'manager')`))
    .addColumn('version', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute()

  await db.schema.createTable('session')
    .addColumn('sid', 'text', (c) => c.primaryKey())
    .addColumn('data', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('session_expires_at').on('session').column('expires_at').execute()

  await db.schema.createTable('document')
    .addColumn('id', serialPrimaryKey(db), (c) => sqlite ? c.primaryKey().autoIncrement() : c.primaryKey())
    .addColumn('slug', 'text', (c) => c.notNull().unique())
    .addColumn('title', 'text', (c) => c.notNull())
    .addColumn('body', 'text', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_by', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('document_updated_at').on('document').column('updated_at').execute()

  // The catalog: the search index over documents, written in the same unit of work as each edit.
  if (sqlite) {
    await sql`create virtual table catalog using fts5(
      slug unindexed, title, body, tokenize = 'porter unicode61 remove_diacritics 2'
    )`.execute(db)
  } else {
    await db.schema.createTable('catalog')
      .addColumn('document_id', 'integer', (c) => c.primaryKey())
      .addColumn('slug', 'text', (c) => c.notNull())
      .addColumn('title', 'text', (c) => c.notNull())
      .addColumn('body', 'text', (c) => c.notNull())
      .addColumn('search', sql`tsvector`, (c) => c.notNull())
      .execute()
    await sql`create index catalog_search on catalog using gin (search)`.execute(db)
  }
}

export async function down (db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('catalog').execute()
  await db.schema.dropTable('document').execute()
  await db.schema.dropTable('session').execute()
  await db.schema.dropTable('app_user').execute()
}
