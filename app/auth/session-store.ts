import type { Session } from 'fastify'
import type { Kysely } from 'kysely'
import { isDatabaseUnavailable } from '../db/errors.js'
import type { DB } from '../db/schema.js'

type Callback<T = void> = (err?: Error | null, result?: T) => void

const DEFAULT_LIFETIME_MS = 8 * 60 * 60 * 1000

declare module 'fastify' {
  interface Session {
    /**
     * Set on a request whose session could not be read because the database is unavailable: it
     * is nobody's for this request, and is never written back over the stored one.
     */
    unreadable?: true
  }
}

/**
 * The @fastify/session store over the site's database (SQLite or PostgreSQL alike). Sessions
 * are infrastructure: they are written directly, not through the unit of work, so signing in
 * works in every maintenance mode.
 *
 * While the database is unavailable, a session that cannot be read stands in as an empty,
 * `unreadable` one (so the cookie is kept, not replaced, and pages that need no database still
 * work); a save that only extends a session's expiry, or keeps an anonymous one, is skipped, and
 * so is a second save of a session whose save failed (the error page that tells the person why
 * would otherwise fail in turn).
 */
export class DatabaseSessionStore {
  readonly #db: Kysely<DB>
  readonly #failedSaves = new WeakSet<Session>()
  readonly #readOnly: () => boolean

  /** `readOnly`: the database takes no writes now (a standby); sessions are then read, never saved. */
  constructor (db: Kysely<DB>, readOnly: () => boolean = () => false) {
    this.#db = db
    this.#readOnly = readOnly
  }

  get (sid: string, callback: Callback<Session | null>): void {
    this.#db.selectFrom('session').select(['data', 'expires_at']).where('sid', '=', sid).executeTakeFirst().then(
      (row) => {
        if (row === undefined || row.expires_at <= new Date().toISOString()) return callback(null, null)
        // @fastify/session restores the plain object (cookie included) into a Session.
        callback(null, JSON.parse(row.data) as Session)
      },
      (err: Error) => {
        if (isDatabaseUnavailable(err)) return callback(null, { unreadable: true } as Session)
        callback(err)
      }
    )
  }

  set (sid: string, session: Session, callback: Callback): void {
    if (session.unreadable === true || this.#failedSaves.has(session) || this.#readOnly()) return callback(null)
    const modified = (session as { isModified?: () => boolean }).isModified?.() ?? true
    const expires = session.cookie.expires
    const expiresAt = expires ? new Date(expires).toISOString() : new Date(Date.now() + DEFAULT_LIFETIME_MS).toISOString()
    const data = JSON.stringify(session)
    const principal = session.principal?.name ?? null
    // A session with someone signed in is only ever updated: it was stored (empty) when it was
    // regenerated at sign-in. So a session ended (endSessionsOf) while one of its requests was
    // still running is not brought back when that request saves it at the end.
    const saved = principal === null
      ? this.#db.insertInto('session')
        .values({ sid, data, expires_at: expiresAt, principal })
        .onConflict((oc) => oc.column('sid').doUpdateSet({ data, expires_at: expiresAt, principal }))
        .execute()
      : this.#db.updateTable('session').set({ data, expires_at: expiresAt, principal }).where('sid', '=', sid).execute()
    saved.then(() => callback(null), (err: Error) => {
      // Only the expiry moved, or nobody is signed in: nothing is lost by not saving now.
      if (isDatabaseUnavailable(err) && (!modified || principal === null)) return callback(null)
      this.#failedSaves.add(session)
      callback(err)
    })
  }

  destroy (sid: string, callback: Callback): void {
    if (this.#readOnly()) return callback(null)
    this.#db.deleteFrom('session').where('sid', '=', sid).execute()
      .then(() => callback(null), (err: Error) => callback(err))
  }

  /** Deletes expired sessions; returns how many. */
  async prune (): Promise<number> {
    const result = await this.#db.deleteFrom('session').where('expires_at', '<=', new Date().toISOString()).executeTakeFirst()
    return Number(result.numDeletedRows)
  }
}

/**
 * Ends every session of `name` on every instance (each request reads its session from the
 * database). Run it in the transaction of the change that calls for it, so it happens only if
 * that change commits.
 */
export async function endSessionsOf (db: Kysely<DB>, name: string): Promise<number> {
  const result = await db.deleteFrom('session').where('principal', '=', name).executeTakeFirst()
  return Number(result.numDeletedRows)
}

/** The names signed in now (sessions not expired), each with the last time their session was used. */
export async function signedInPeople (db: Kysely<DB>, now = new Date()): Promise<Array<{ name: string, lastSeen: string }>> {
  const rows = await db.selectFrom('session')
    .select((eb) => ['principal', eb.fn.max('expires_at').as('expires_at')])
    .where('principal', 'is not', null)
    .where('expires_at', '>', now.toISOString())
    .groupBy('principal')
    .orderBy('principal')
    .execute()
  // Sessions roll: each answer moves the expiry to the full lifetime from then.
  return rows.map((row) => ({ name: row.principal!, lastSeen: new Date(Date.parse(String(row.expires_at)) - DEFAULT_LIFETIME_MS).toISOString() }))
}
