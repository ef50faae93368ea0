import pg from 'pg'
import { Kysely, PostgresDialect, type PostgresPool, type PostgresPoolClient, type PostgresQueryResult } from 'kysely'
import type { DB } from './schema.js'

interface PostgresHandles {
  writer: Kysely<DB>
  reader: Kysely<DB>
  writePool: pg.Pool
}

/**
 * How long the site waits for PostgreSQL, so that no request hangs when the server is down, hung
 * or cut off: a request gets `503 QUIESCE_STATE_UNAVAILABLE` within about `connectMs + queryMs`.
 * Healthy answers take milliseconds; each bound is far above what the site's own statements need
 * (a reindex batch, an export page, a commit), and below what a person waits before giving up.
 */
export interface PostgresTimeouts {
  /** Opening a connection, and waiting for a free one when the pool is busy (pg-pool `connectionTimeoutMillis`). */
  connectMs: number
  /** `statement_timeout`: the server cancels a statement, lock waits included, that runs longer. */
  statementMs: number
  /**
   * Our own wait for an answer (`query_timeout`), a little longer than `statementMs`: it ends the
   * wait on a server that no longer answers at all (frozen, partitioned), where no server-side
   * timeout can fire. The connection is then discarded.
   */
  queryMs: number
  /**
   * `idle_in_transaction_session_timeout` on the writer: a transaction left open by an instance
   * that stopped (frozen, cut off) is ended by the server, so its locks (the maintenance state
   * row) do not block every state change until TCP notices, hours later.
   */
  idleInTransactionMs: number
  /** A pooled connection unused this long is closed (pg-pool `idleTimeoutMillis`). */
  idleMs: number
}

export const POSTGRES_TIMEOUTS: PostgresTimeouts = {
  connectMs: 5000,
  statementMs: 10_000,
  queryMs: 12_000,
  idleInTransactionMs: 30_000,
  idleMs: 10_000,
}

export function openPostgres (url: string, onIdleError: (err: Error) => void, timeouts: PostgresTimeouts = POSTGRES_TIMEOUTS, poolSize = 10): PostgresHandles {
  const writePool = new pg.Pool({
    ...poolOptions(url, timeouts, poolSize),
    application_name: 'quiesce',
    options: `-c statement_timeout=${timeouts.statementMs} -c idle_in_transaction_session_timeout=${timeouts.idleInTransactionMs}`,
  })
  // An idle client that loses its connection emits 'error'; without a listener the process dies.
  writePool.on('error', onIdleError)
  return {
    writer: new Kysely<DB>({ dialect: new PostgresDialect({ pool: discardingBrokenClients(writePool) }) }),
    reader: openReader(url, onIdleError, timeouts, poolSize),
    writePool,
  }
}

/**
 * A pool whose sessions are read-only by default, the primary's (requests read through it) or a
 * replica's; `onFailure` hears every error of a connection or query of it (a replica's is
 * watched: app/db/replicas.ts).
 */
export function openReader (url: string, onIdleError: (err: Error) => void, timeouts: PostgresTimeouts, poolSize: number, onFailure?: (err: unknown) => void): Kysely<DB> {
  // A handler that bypasses the unit of work with raw SQL gets `25006 read_only_sql_transaction`.
  // (No idle transaction timeout here: an export's snapshot waits on its output, and holds no row locks.)
  const readPool = new pg.Pool({
    ...poolOptions(url, timeouts, poolSize),
    application_name: 'quiesce-reader',
    options: `-c default_transaction_read_only=on -c statement_timeout=${timeouts.statementMs}`,
  })
  readPool.on('error', onIdleError)
  return new Kysely<DB>({ dialect: new PostgresDialect({ pool: discardingBrokenClients(readPool, onFailure) }) })
}

/**
 * A standby instance's one connection to its primary, for its heartbeat in the primary's
 * registry only. The standby serves without it: a heartbeat that fails is logged and tried again.
 */
export function openRegistryWriter (url: string, onIdleError: (err: Error) => void, timeouts: PostgresTimeouts): Kysely<DB> {
  const pool = new pg.Pool({
    ...poolOptions(url, timeouts, 1),
    application_name: 'quiesce-registry',
    options: `-c statement_timeout=${timeouts.statementMs}`,
  })
  pool.on('error', onIdleError)
  return new Kysely<DB>({ dialect: new PostgresDialect({ pool: discardingBrokenClients(pool) }) })
}

function poolOptions (url: string, timeouts: PostgresTimeouts, poolSize: number): pg.PoolConfig {
  return {
    connectionString: url,
    max: poolSize,
    connectionTimeoutMillis: timeouts.connectMs,
    idleTimeoutMillis: timeouts.idleMs,
    query_timeout: timeouts.queryMs,
    keepAlive: true,
  }
}

/**
 * Runs `work` (the migrations) on a connection of its own, without the statement, query and
 * idle-transaction timeouts: a migration may wait for another process's migration lock, and may
 * rebuild a large table; neither is a request that someone waits for.
 */
export async function withMigrationConnection<T> (url: string, work: (db: Kysely<DB>) => Promise<T>, timeouts: PostgresTimeouts = POSTGRES_TIMEOUTS): Promise<T> {
  const pool = new pg.Pool({ connectionString: url, max: 1, connectionTimeoutMillis: timeouts.connectMs, keepAlive: true, application_name: 'quiesce-migrate' })
  pool.on('error', () => {})
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) })
  try {
    return await work(db)
  } finally {
    await db.destroy()
  }
}

/**
 * A pool whose clients go back to pg-pool with their error when their connection failed or a
 * query failed without a server error (`Query read timeout`, a cut connection): pg-pool then
 * closes them instead of handing a connection that may still be busy with the abandoned query
 * to the next request.
 */
function discardingBrokenClients (pool: pg.Pool, onFailure?: (err: unknown) => void): PostgresPool {
  const clients = new WeakMap<pg.PoolClient, CheckedClient>()
  return {
    async connect () {
      let client: pg.PoolClient
      try {
        client = await pool.connect()
      } catch (err) {
        onFailure?.(err)
        throw err
      }
      let checked = clients.get(client)
      if (checked === undefined) {
        checked = new CheckedClient(client, onFailure)
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
  readonly #onFailure: ((err: unknown) => void) | undefined
  #broken: Error | undefined

  constructor (client: pg.PoolClient, onFailure?: (err: unknown) => void) {
    this.#client = client
    this.#onFailure = onFailure
    // pg-pool listens for errors of idle clients only: a connection lost while Kysely holds the
    // client between two statements (in a transaction) would otherwise throw from the event
    // emitter and end the process. Noted, it is discarded on release.
    client.on('error', (err) => { this.#broken = err })
  }

  query<R> (sqlText: string, parameters: ReadonlyArray<unknown>): Promise<PostgresQueryResult<R>>
  query (...args: never[]): never
  query (sqlText: unknown, parameters?: ReadonlyArray<unknown>): unknown {
    return (this.#client.query(sqlText as string, parameters as unknown[]) as Promise<unknown>).then(
      // Statements sent as one (without parameters: app/db/transactions.ts) answer with a result
      // each; Kysely reads one, the last.
      (result) => Array.isArray(result) ? result.at(-1) as unknown : result,
      (err: unknown) => {
        if (!(err instanceof pg.DatabaseError)) this.#broken = err as Error
        this.#onFailure?.(err)
        throw err
      })
  }

  release (): void {
    const broken = this.#broken
    this.#broken = undefined
    this.#client.release(broken)
  }
}

export function redactPassword (url: string): string {
  const parsed = new URL(url)
  if (parsed.password) parsed.password = '***'
  return parsed.toString()
}
