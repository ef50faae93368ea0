import type { Session } from 'fastify'
import type { Kysely } from 'kysely'
import type { DB } from '../db/schema.js'

type Callback<T = void> = (err?: Error | null, result?: T) => void

const DEFAULT_LIFETIME_MS = 8 * 60 * 60 * 1000

/**
 * The @fastify/session store over the site's database (SQLite or PostgreSQL alike). Sessions
 * are infrastructure: they are written directly, not through the unit of work, so signing in
 * works in every maintenance mode.
 */
export class DatabaseSessionStore {
  readonly #db: Kysely<DB>

  constructor (db: Kysely<DB>) {
    this.#db = db
  }

  get (sid: string, callback: Callback<Session | null>): void {
    this.#db.selectFrom('session').select(['data', 'expires_at']).where('sid', '=', sid).executeTakeFirst().then(
      (row) => {
        if (row === undefined || row.expires_at <= new Date().toISOString()) return callback(null, null)
        // @fastify/session restores the plain object (cookie included) into a Session.
        callback(null, JSON.parse(row.data) as Session)
      },
      (err: Error) => callback(err)
    )
  }

  set (sid: string, session: Session, callback: Callback): void {
    const expires = session.cookie.expires
    const expiresAt = expires ? new Date(expires).toISOString() : new Date(Date.now() + DEFAULT_LIFETIME_MS).toISOString()
    const data = JSON.stringify(session)
    this.#db.insertInto('session')
      .values({ sid, data, expires_at: expiresAt })
      .onConflict((oc) => oc.column('sid').doUpdateSet({ data, expires_at: expiresAt }))
      .execute()
      .then(() => callback(null), (err: Error) => callback(err))
  }

  destroy (sid: string, callback: Callback): void {
    this.#db.deleteFrom('session').where('sid', '=', sid).execute()
      .then(() => callback(null), (err: Error) => callback(err))
  }

  /** Deletes expired sessions; returns how many. */
  async prune (): Promise<number> {
    const result = await this.#db.deleteFrom('session').where('expires_at', '<=', new Date().toISOString()).executeTakeFirst()
    return Number(result.numDeletedRows)
  }
}
