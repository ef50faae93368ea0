import { sql, type Kysely } from 'kysely'
import type { DB } from './schema.js'

/**
 * A position in PostgreSQL's write-ahead log (a `pg_lsn`) as a number, so positions compare with
 * `<`. PostgreSQL writes it as two hexadecimal halves, `16/B374D848`.
 */
export type WalPosition = bigint

const LSN = /^([0-9A-F]{1,8})\/([0-9A-F]{1,8})$/i

/** The position of a `pg_lsn` text, or undefined for anything else. */
export function parseWalPosition (text: string): WalPosition | undefined {
  const match = LSN.exec(text)
  if (match === null) return undefined
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`)
}

/** The `pg_lsn` text of a position, as PostgreSQL writes it. */
export function formatWalPosition (position: WalPosition): string {
  return `${(position >> 32n).toString(16).toUpperCase()}/${(position & 0xFFFFFFFFn).toString(16).toUpperCase()}`
}

/**
 * The primary's WAL insert position, read right after a COMMIT: it is at or past the end of that
 * commit's record, so a replica that has replayed up to it shows the commit. (It may point past
 * a page header where no record ends; a replica then reaches it with the next record, which only
 * keeps the person on the primary a little longer.) The insert position, not the flush position,
 * also holds with `synchronous_commit = off`.
 */
export async function walInsertPosition (db: Kysely<DB>): Promise<WalPosition> {
  const { rows } = await sql<{ lsn: string }>`select pg_current_wal_insert_lsn()::text as lsn`.execute(db)
  return requirePosition(rows[0]?.lsn)
}

function requirePosition (text: string | undefined): WalPosition {
  const position = text === undefined ? undefined : parseWalPosition(text)
  if (position === undefined) throw new Error(`not a WAL position: ${String(text)}`)
  return position
}
