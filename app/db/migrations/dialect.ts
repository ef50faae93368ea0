import { SqliteAdapter, type Kysely } from 'kysely'

/** Migrations branch on the dialect only where the two databases differ (keys, full-text search). */
export function isSqlite (db: Kysely<any>): boolean {
  return db.getExecutor().adapter instanceof SqliteAdapter
}

export function serialPrimaryKey (db: Kysely<any>): 'integer' | 'serial' {
  return isSqlite(db) ? 'integer' : 'serial'
}
