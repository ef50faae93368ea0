import pg from 'pg'
import { Kysely, PostgresDialect, type PostgresPool, type PostgresPoolClient, type PostgresQueryResult } from 'kysely'
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
    writer: new Kysely<DB>({ dialect: new PostgresDialect({ pool: discardingBrokenClients(writePool) }) }),
    reader: new Kysely<DB>({ dialect: new PostgresDialect({ pool: discardingBrokenClients(readPool) }) }),
    writePool,
  }
}

/**
 * A pool whose clients go back to pg-pool with their error when their connection failed or a
 * query failed without a server error (`Query read timeout`, a cut connection): pg-pool then
 * closes them instead of handing a connection that may still be busy with the abandoned query
 * to the next request.
 */
function discardingBrokenClients (pool: pg.Pool): PostgresPool {
  const clients = new WeakMap<pg.PoolClient, CheckedClient>()
  return {
    async connect () {
      const client = await pool.connect()
      let checked = clients.get(client)
      if (checked === undefined) {
        checked = new CheckedClient(client)
        // The same wrapper for the same connection: Kysely keeps its state per client object.
        clients.set(client, checked)
      }
      return checked
    },
    end: () => pool.end(),
  }
}

class CheckedClient implements PostgresPoolClient {
  readonly #client: pg.PoolClient
  #broken: Error | undefined

  constructor (client: pg.PoolClient) {
    this.#client = client
    // pg-pool listens for errors of idle clients only: a connection lost while Kysely holds the
    // client between two statements (in a transaction) would otherwise throw from the event
    // emitter and end the process. Noted, it is discarded on release.
    client.on('error', (err) => { this.#broken = err })
  }

  query<R> (sqlText: string, parameters: ReadonlyArray<unknown>): Promise<PostgresQueryResult<R>>
  query (...args: never[]): never
  query (sqlText: unknown, parameters?: ReadonlyArray<unknown>): unknown {
    return (this.#client.query(sqlText as string, parameters as unknown[]) as Promise<unknown>).catch((err: unknown) => {
      if (!(err instanceof pg.DatabaseError)) this.#broken = err as Error
      throw err
    })
  }

  release (): void {
    const broken = this.#broken
    this.#broken = undefined
    this.#client.release(broken)
  }
}
