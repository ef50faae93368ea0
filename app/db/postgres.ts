import pg from 'pg'
import { Kysely, PostgresDialect } from 'kysely'
import type { DB } from './schema.js'

export interface PostgresHandles {
  writer: Kysely<DB>
  reader: Kysely<DB>
  writePool: pg.Pool
}

export function openPostgres (url: string, onIdleError: (err: Error) => void, poolSize = 10): PostgresHandles {
  const writePool = new pg.Pool({ connectionString: url, max: poolSize, application_name: 'quiesce' })
  // Requests read through sessions whose transactions are read-only by default, so a handler
  // that bypasses the unit of work with raw SQL gets `25006 read_only_sql_transaction`.
  const readPool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    application_name: 'quiesce-reader',
    options: '-c default_transaction_read_only=on',
  })
  for (const pool of [writePool, readPool]) {
    // An idle client that loses its connection emits 'error'; without a listener the process dies.
    pool.on('error', onIdleError)
  }
  return {
    writer: new Kysely<DB>({ dialect: new PostgresDialect({ pool: writePool }) }),
    reader: new Kysely<DB>({ dialect: new PostgresDialect({ pool: readPool }) }),
    writePool,
  }
}
