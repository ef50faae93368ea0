import { SqliteAdapter, type Kysely } from 'kysely'
import type { DB, Role, UserAction, UserLogTable } from '../db/schema.js'
import { invalidInput } from '../errors.js'
import { assertVersionMatched } from '../unit-of-work/unit-of-work.js'
import { endSessionsOf } from './session-store.js'

export interface User {
  id: number
  username: string
  role: Role
  version: number
  createdAt: string
  /** When the user was disabled (they cannot sign in), or null. */
  disabledAt: string | null
  disabledBy: string | null
}

export function isRole (value: unknown): value is Role {
  return value === 'member' || value === 'manager'
}

export async function findUserWithHash (db: Kysely<DB>, username: string) {
  return db.selectFrom('app_user')
    .select(['id', 'username', 'role', 'password_hash', 'disabled_at'])
    .where('username', '=', username)
    .executeTakeFirst()
}

export async function listUsers (db: Kysely<DB>): Promise<User[]> {
  const rows = await db.selectFrom('app_user')
    .select(['id', 'username', 'role', 'version', 'created_at', 'disabled_at', 'disabled_by'])
    .orderBy('username')
    .execute()
  return rows.map((row) => ({
    id: row.id,
    username: row.username,
    role: row.role,
    version: row.version,
    createdAt: row.created_at,
    disabledAt: row.disabled_at,
    disabledBy: row.disabled_by,
  }))
}

/** Whether the site has any user at all, disabled ones included. */
export async function hasUsers (db: Kysely<DB>): Promise<boolean> {
  return (await db.selectFrom('app_user').select('id').limit(1).execute()).length > 0
}

/** The user's row version, which every change of the user moves on; undefined when there is no such user. */
export async function userVersion (db: Kysely<DB>, username: string): Promise<number | undefined> {
  const row = await db.selectFrom('app_user').select('version').where('username', '=', username).executeTakeFirst()
  return row?.version
}

export async function findUser (db: Kysely<DB>, username: string): Promise<User | undefined> {
  return (await listUsers(db)).find((user) => user.username === username)
}

/** Every manager, disabled or not: a new site has none. */
export async function countManagers (db: Kysely<DB>): Promise<number> {
  const row = await db.selectFrom('app_user')
    .select((eb) => eb.fn.countAll<string | number>().as('n'))
    .where('role', '=', 'manager')
    .executeTakeFirstOrThrow()
  return Number(row.n)
}

/** Managers who can sign in. */
export async function countActiveManagers (db: Kysely<DB>): Promise<number> {
  const row = await db.selectFrom('app_user')
    .select((eb) => eb.fn.countAll<string | number>().as('n'))
    .where('role', '=', 'manager')
    .where('disabled_at', 'is', null)
    .executeTakeFirstOrThrow()
  return Number(row.n)
}

export async function insertUser (db: Kysely<DB>, user: { username: string, passwordHash: string, role: Role }): Promise<void> {
  const now = new Date().toISOString()
  await db.insertInto('app_user').values({
    username: user.username,
    password_hash: user.passwordHash,
    role: user.role,
    version: 1,
    created_at: now,
    updated_at: now,
  }).execute()
}

/** Who changes a user, and through which channel, for the user log. */
export interface UserActor {
  name: string
  channel: UserLogTable['channel']
}

export async function logUserAction (db: Kysely<DB>, actor: UserActor, username: string, action: UserAction, detail: string | null = null): Promise<void> {
  await db.insertInto('user_log').values({ at: new Date().toISOString(), actor: actor.name, channel: actor.channel, username, action, detail }).execute()
}

export interface UserLogEntry {
  id: number
  at: string
  actor: string
  channel: UserLogTable['channel']
  username: string
  action: UserAction
  detail: string | null
}

export async function userLog (db: Kysely<DB>, limit: number): Promise<UserLogEntry[]> {
  return db.selectFrom('user_log').selectAll().orderBy('id', 'desc').limit(limit).execute()
}

/** Why taking `username` out of the managers who can sign in is refused. */
export function lastManagerMessage (username: string): string {
  return `${username} is the last manager who can sign in, and the site needs one; make someone else a manager first`
}

/**
 * Run inside the transaction of a change that may take a manager away (a role change, disabling,
 * removing), after it: refuses the commit if no manager who can sign in is left. On PostgreSQL
 * the managers' rows are locked first ({@link lockActiveManagers}), so two managers demoting each
 * other at the same moment cannot both pass; SQLite runs one write transaction at a time.
 */
async function assertManagerRemains (transaction: Kysely<DB>, username: string): Promise<void> {
  if (await countActiveManagers(transaction) === 0) throw invalidInput({ user: lastManagerMessage(username) })
}

async function lockActiveManagers (transaction: Kysely<DB>): Promise<void> {
  if (transaction.getExecutor().adapter instanceof SqliteAdapter) return
  await transaction.selectFrom('app_user').select('id').where('role', '=', 'manager').where('disabled_at', 'is', null).forUpdate().execute()
}

/** An update of one user, guarded by the version its page showed. */
async function updateUser (transaction: Kysely<DB>, user: Pick<User, 'id' | 'username'>, expectedVersion: number, set: Partial<Pick<DB['app_user'], 'role' | 'disabled_at' | 'disabled_by' | 'password_hash'>>): Promise<void> {
  const result = await transaction.updateTable('app_user')
    .set((eb) => ({ ...set, version: eb('version', '+', 1), updated_at: new Date().toISOString() }))
    .where('id', '=', user.id).where('version', '=', expectedVersion)
    .executeTakeFirst()
  assertVersionMatched(result, `user ${user.username}`)
}

// The writes below run inside a commit's transaction (a staged write of the unit of work, or
// the command line's own transaction). Each ends the person's sessions, so that the change takes
// effect at once rather than at their next sign-in, and writes the user log.

/** A new user, and its entry in the user log. */
export async function createUser (transaction: Kysely<DB>, actor: UserActor, user: { username: string, passwordHash: string, role: Role }): Promise<void> {
  await insertUser(transaction, user)
  await logUserAction(transaction, actor, user.username, 'added', `as ${user.role}`)
}

export async function changeRole (transaction: Kysely<DB>, actor: UserActor, user: User, role: Role, expectedVersion: number): Promise<void> {
  await lockActiveManagers(transaction)
  await updateUser(transaction, user, expectedVersion, { role })
  if (role === 'member') await assertManagerRemains(transaction, user.username)
  await endSessionsOf(transaction, user.username)
  await logUserAction(transaction, actor, user.username, 'role', `${user.role} → ${role}`)
}

export async function setDisabled (transaction: Kysely<DB>, actor: UserActor, user: User, disabled: boolean, expectedVersion: number): Promise<void> {
  await lockActiveManagers(transaction)
  await updateUser(transaction, user, expectedVersion, disabled
    ? { disabled_at: new Date().toISOString(), disabled_by: actor.name }
    : { disabled_at: null, disabled_by: null })
  if (disabled) {
    await assertManagerRemains(transaction, user.username)
    await endSessionsOf(transaction, user.username)
    await withdrawResetLinks(transaction, user.id, 'unused')
  }
  await logUserAction(transaction, actor, user.username, disabled ? 'disabled' : 'enabled')
}

/** Removes a user for good; their name stays on the documents they wrote and in the logs. */
export async function removeUser (transaction: Kysely<DB>, actor: UserActor, user: User, expectedVersion: number): Promise<void> {
  await lockActiveManagers(transaction)
  const result = await transaction.deleteFrom('app_user').where('id', '=', user.id).where('version', '=', expectedVersion).executeTakeFirst()
  assertVersionMatched(result, `user ${user.username}`)
  await assertManagerRemains(transaction, user.username)
  await endSessionsOf(transaction, user.username)
  await withdrawResetLinks(transaction, user.id, 'all')
  await logUserAction(transaction, actor, user.username, 'removed', `was a ${user.role}`)
}

/** A new password hash; the person's other sessions end (a reset often follows a lost or leaked password). */
export async function setPasswordHash (transaction: Kysely<DB>, actor: UserActor, user: Pick<User, 'id' | 'username' | 'version'>, passwordHash: string, action: 'password' | 'password-reset'): Promise<void> {
  await updateUser(transaction, user, user.version, { password_hash: passwordHash })
  await endSessionsOf(transaction, user.username)
  await logUserAction(transaction, actor, user.username, action)
}

// The rows of password resets; what a link may do, and when, is app/auth/password-resets.ts.

/** Deletes the user's reset links: the ones not used yet, or all of them. */
export async function withdrawResetLinks (transaction: Kysely<DB>, userId: number, which: 'unused' | 'all'): Promise<void> {
  let query = transaction.deleteFrom('password_reset').where('user_id', '=', userId)
  if (which === 'unused') query = query.where('used_at', 'is', null)
  await query.execute()
}

export async function insertResetLink (transaction: Kysely<DB>, link: { userId: number, tokenHash: string, createdBy: string, createdAt: string, expiresAt: string }): Promise<void> {
  await transaction.insertInto('password_reset').values({
    user_id: link.userId,
    token_hash: link.tokenHash,
    created_by: link.createdBy,
    created_at: link.createdAt,
    expires_at: link.expiresAt,
  }).execute()
}

/** The reset link with this token hash, and its user as they are now. */
export async function findResetLink (db: Kysely<DB>, tokenHash: string) {
  return db.selectFrom('password_reset')
    .innerJoin('app_user', 'app_user.id', 'password_reset.user_id')
    .select(['password_reset.id', 'password_reset.expires_at', 'password_reset.used_at', 'app_user.id as user_id', 'app_user.username', 'app_user.version', 'app_user.disabled_at'])
    .where('password_reset.token_hash', '=', tokenHash)
    .executeTakeFirst()
}

/** Marks a link used if it was neither used nor expired at `now` (a compare-and-set); false when it was. */
export async function spendResetLink (transaction: Kysely<DB>, id: number, now: string): Promise<boolean> {
  const spent = await transaction.updateTable('password_reset').set({ used_at: now })
    .where('id', '=', id).where('used_at', 'is', null).where('expires_at', '>', now)
    .executeTakeFirst()
  return spent.numUpdatedRows > 0n
}
