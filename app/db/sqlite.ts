import { mkdirSync } from 'node:fs'
import path from 'node:path'
import BetterSqlite3 from 'better-sqlite3'
import { Kysely } from 'kysely'
import type { DB } from './schema.js'
import { betterSqliteDialect } from './sqlite-driver.js'

interface SqliteHandles {
  writer: Kysely<DB>
  reader: Kysely<DB>
  /** The file's change counter: it moves when another connection or process commits. */
  dataVersion (): number
}

/**
 * Two connections to one SQLite file in WAL mode: a writer for commits and infrastructure,
 * and a reader that SQLite itself opened read-only, through which requests read, so a
 * handler that bypasses the unit of work with raw SQL cannot write (SQLITE_READONLY).
 */
export function openSqlite (file: string): SqliteHandles {
  mkdirSync(path.dirname(file), { recursive: true })
  let writeConnection: BetterSqlite3.Database | undefined
  const writer = new Kysely<DB>({
    dialect: betterSqliteDialect({
      connect () {
        writeConnection = new BetterSqlite3(file)
        writeConnection.pragma('journal_mode = WAL')
        writeConnection.pragma('synchronous = NORMAL')
        writeConnection.pragma('foreign_keys = ON')
        return writeConnection
      },
    }),
  })
  // The reader connects on its first query, after migrations have created the file's tables.
  const reader = openSqliteReader(file)
  let dataVersion: BetterSqlite3.Statement | undefined
  return {
    writer,
    reader,
    dataVersion () {
      if (writeConnection === undefined) throw new Error('the database is not open yet')
      dataVersion ??= writeConnection.prepare('pragma data_version').pluck()
      return dataVersion.get() as number
    },
  }
}

/** A connection that SQLite itself opened read-only, on its first query. */
export function openSqliteReader (file: string): Kysely<DB> {
  return new Kysely<DB>({
    dialect: betterSqliteDialect({ connect: () => new BetterSqlite3(file, { readonly: true, fileMustExist: true }) }),
  })
}
