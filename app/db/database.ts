import type { Kysely } from 'kysely'
import type { DatabaseUrl } from '../config.js'
import { migrateToLatest } from './migrate.js'
import { openPostgres, openRegistryWriter, POSTGRES_TIMEOUTS, redactPassword, withMigrationConnection, type PostgresTimeouts } from './postgres.js'
import { Replicas, type ReplicaOptions } from './replicas.js'
import type { DB } from './schema.js'
import { openSqlite, openSqliteReader } from './sqlite.js'
import { assertSchemaCurrent, inRecovery, StandbyWatch } from './standby.js'

export type DatabaseKind = DatabaseUrl['kind']

/**
 * The site's database: one `writer` for commits and infrastructure (sessions, the maintenance
 * state, heartbeats) and one `reader` that the database itself keeps read-only, through which
 * every request reads.
 */
export interface Database {
  kind: DatabaseKind
  writer: Kysely<DB>
  reader: Kysely<DB>
  /** A human-readable location for logs and `quiesce status` (no password). */
  location: string
  /** SQLite only: the file's change counter (`PRAGMA data_version`). */
  dataVersion?: () => number
  /** PostgreSQL only: the connection string, for a dedicated LISTEN connection. */
  postgresUrl?: string
  /**
   * The database is a hot standby (PostgreSQL in recovery): it can be read, and takes no write
   * until it is promoted. Checked at open, then watched: it turns false, for good, on promotion.
   */
  readonly standby: boolean
  /** Called once when a standby is found promoted (never for a primary or SQLite). */
  onPromoted (listener: () => void): void
  /** PostgreSQL with QUIESCE_REPLICA_URLS only: hot standbys that requests may read from. */
  replicas?: Replicas
  /**
   * A standby with QUIESCE_PRIMARY_DATABASE_URL only: a connection to the primary, where the
   * instance registers (the standby's own registry is the primary's, replicated, and read-only).
   */
  primaryRegistry?: Kysely<DB>
  /**
   * A reader for one long read-only snapshot (an export) that holds up no request. SQLite: a
   * read-only connection of its own (every request of this instance reads through the one
   * reader connection). PostgreSQL: the reader pool (a snapshot takes one of its connections).
   */
  openSnapshotReader (): SnapshotReader
  destroy (): Promise<void>
}

interface SnapshotReader {
  db: Kysely<DB>
  close (): Promise<void>
}

interface OpenDatabaseOptions {
  /** Called when an idle pooled PostgreSQL connection fails (the pool replaces it). */
  onIdleError?: (err: Error) => void
  /** PostgreSQL only: the documented defaults ({@link POSTGRES_TIMEOUTS}) unless tests shorten them. */
  timeouts?: Partial<PostgresTimeouts>
  /** PostgreSQL only: hot standbys of the primary to read from (the server passes QUIESCE_REPLICA_URLS). */
  replicas?: ReplicaOptions
  /** PostgreSQL only: if the database is a standby, its primary's URL, to register there (QUIESCE_PRIMARY_DATABASE_URL). */
  primaryUrl?: string | null
}

/** Opens the database and brings its schema up to date before anything reads from it. */
export async function openDatabase (url: DatabaseUrl, options: OpenDatabaseOptions = {}): Promise<Database> {
  if (url.kind === 'sqlite') {
    const handles = openSqlite(url.file)
    try {
      await migrateToLatest(handles.writer)
    } catch (err) {
      await handles.writer.destroy()
      throw err
    }
    return {
      kind: 'sqlite',
      writer: handles.writer,
      reader: handles.reader,
      location: url.file,
      dataVersion: handles.dataVersion,
      standby: false,
      onPromoted () {},
      openSnapshotReader () {
        const db = openSqliteReader(url.file)
        return { db, close: () => db.destroy() }
      },
      async destroy () {
        await handles.reader.destroy()
        await handles.writer.destroy()
      },
    }
  }
  const timeouts = { ...POSTGRES_TIMEOUTS, ...options.timeouts }
  const onIdleError = options.onIdleError ?? (() => {})
  const handles = openPostgres(url.url, onIdleError, timeouts)
  const replicas = options.replicas !== undefined && options.replicas.urls.length > 0
    ? new Replicas(url.url, options.replicas, onIdleError)
    : undefined
  let watch: StandbyWatch | undefined
  let primaryRegistry: Kysely<DB> | undefined
  const destroy = async () => {
    watch?.stop()
    await primaryRegistry?.destroy()
    await replicas?.close()
    await handles.reader.destroy()
    await handles.writer.destroy()
  }
  try {
    // A standby replays the primary's schema; it cannot (and need not) migrate.
    const standby = await withMigrationConnection(url.url, async (db) => {
      if (!await inRecovery(db)) {
        await migrateToLatest(db)
        return false
      }
      await assertSchemaCurrent(db)
      return true
    }, timeouts)
    if (standby) {
      watch = new StandbyWatch(handles.reader)
      if (options.primaryUrl != null) primaryRegistry = openRegistryWriter(options.primaryUrl, onIdleError, timeouts)
    }
  } catch (err) {
    await destroy()
    throw err
  }
  return {
    kind: 'postgres',
    writer: handles.writer,
    reader: handles.reader,
    location: redactPassword(url.url),
    postgresUrl: url.url,
    get standby () { return watch?.standby ?? false },
    onPromoted (listener) { watch?.onPromoted(listener) },
    replicas,
    primaryRegistry,
    openSnapshotReader: () => ({ db: handles.reader, async close () {} }),
    destroy,
  }
}
