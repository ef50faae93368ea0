import type { Kysely, Selectable } from 'kysely'
import type { DB, SignInFailureTable } from '../db/schema.js'
import type { SignInChannel } from './sign-in-limiter.js'

export interface SignInFailure {
  id: number
  at: string
  account: string
  address: string
  channel: SignInChannel
  instance: string
}

/** How long failed sign-ins are kept. */
export const SIGN_IN_FAILURES_KEPT_DAYS = 30
const MAX_ACCOUNT_LENGTH = 100

/**
 * Records a failed sign-in (infrastructure, like sessions: written directly, in every mode).
 * The name is kept as typed, made storable: control characters as U+FFFD, at most 100 characters.
 */
export async function recordSignInFailure (db: Kysely<DB>, failure: Omit<SignInFailure, 'id' | 'at'>): Promise<void> {
  // Matching control characters is the point here.
  // eslint-disable-next-line no-control-regex
  const account = failure.account.replace(/[\u0000-\u001f\u007f]/g, '\ufffd').slice(0, MAX_ACCOUNT_LENGTH)
  await db.insertInto('sign_in_failure').values({ ...failure, account, at: new Date().toISOString() }).execute()
}

/** The newest failed sign-ins first, and how many there were since `since`. */
export async function recentSignInFailures (db: Kysely<DB>, options: { limit: number, since: string }): Promise<{ failures: SignInFailure[], count: number }> {
  const [rows, counted] = await Promise.all([
    db.selectFrom('sign_in_failure').selectAll().orderBy('id', 'desc').limit(options.limit).execute(),
    db.selectFrom('sign_in_failure').select((eb) => eb.fn.countAll<string | number>().as('n')).where('at', '>=', options.since).executeTakeFirstOrThrow(),
  ])
  return { failures: rows.map(toFailure), count: Number(counted.n) }
}

export async function pruneSignInFailures (db: Kysely<DB>, now = Date.now()): Promise<void> {
  const before = new Date(now - SIGN_IN_FAILURES_KEPT_DAYS * 24 * 60 * 60 * 1000).toISOString()
  await db.deleteFrom('sign_in_failure').where('at', '<', before).execute()
}

function toFailure (row: Selectable<SignInFailureTable>): SignInFailure {
  return { id: row.id, at: row.at, account: row.account, address: row.address, channel: row.channel, instance: row.instance }
}
