import { CompiledQuery, sql, SqliteAdapter, type Kysely, type Transaction } from 'kysely'
import type { DB } from './schema.js'

/**
 * A transaction whose first statement is `first` (fixed SQL without parameters), its rows handed
 * to `work`. On PostgreSQL, BEGIN and `first` are one round trip (one query of the simple
 * protocol, two statements), and the transaction is run by hand on one connection: COMMIT
 * when `work` returns, ROLLBACK when it throws, as Kysely's own. On SQLite, where a statement
 * costs no round trip, it runs after BEGIN IMMEDIATE as a prepared statement of the
 * connection's cache. Either way `first` runs inside the transaction, and what it locks stays
 * locked until the end.
 */
export async function transactionBeginningWith<T> (db: Kysely<DB>, first: string, work: (transaction: Transaction<DB>, rows: readonly unknown[]) => Promise<T>): Promise<T> {
  if (db.getExecutor().adapter instanceof SqliteAdapter) {
    return db.transaction().execute(async (transaction) => work(transaction, (await transaction.executeQuery(CompiledQuery.raw(first))).rows))
  }
  return db.connection().execute(async (connection) => {
    let result: T
    try {
      const { rows } = await sql.raw(`begin; ${first}`).execute(connection)
      // A Kysely bound to the transaction's one connection: what a Transaction is, but for
      // its BEGIN having been sent here.
      result = await work(connection as unknown as Transaction<DB>, rows)
    } catch (err) {
      // Fails only with the connection, which the pool then discards; the first error says more.
      await sql.raw('rollback').execute(connection).catch(() => {})
      throw err
    }
    await sql.raw('commit').execute(connection)
    return result
  })
}
