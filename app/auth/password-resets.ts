import { createHash, randomBytes } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { DB } from '../db/schema.js'
import { ConflictError } from '../errors.js'
import { findResetLink, insertResetLink, logUserAction, setPasswordHash, spendResetLink, withdrawResetLinks, type User, type UserActor } from './users.js'

/**
 * A password reset is started by a manager and finished by the person: the manager gets a
 * one-time link to hand over (it is shown once; only a SHA-256 of its token is stored), the
 * person opens it and sets a new password. A link works once, for {@link RESET_LIFETIME_MS},
 * and only for the newest link of that user; disabling the user withdraws it.
 */
export const RESET_LIFETIME_MS = 24 * 60 * 60 * 1000

export function resetTokenHash (token: string): string {
  return createHash('sha256').update(token).digest('base64url')
}

/** A new token (256 random bits) and its row; an earlier unused link of the same user stops working. */
export async function createPasswordReset (transaction: Kysely<DB>, actor: UserActor, user: Pick<User, 'id' | 'username'>, token: string, now = new Date()): Promise<void> {
  await withdrawResetLinks(transaction, user.id, 'unused')
  const expiresAt = new Date(now.getTime() + RESET_LIFETIME_MS).toISOString()
  await insertResetLink(transaction, { userId: user.id, tokenHash: resetTokenHash(token), createdBy: actor.name, createdAt: now.toISOString(), expiresAt })
  await logUserAction(transaction, actor, user.username, 'reset-link', `valid until ${expiresAt.slice(0, 16).replace('T', ' ')} UTC`)
}

export function newResetToken (): string {
  return randomBytes(32).toString('base64url')
}

interface PendingReset {
  id: number
  user: { id: number, username: string, version: number }
  expiresAt: string
}

/** Why a link cannot be used, in words for the person holding it. */
export type ResetProblem = 'unknown' | 'used' | 'expired' | 'disabled'

/** The reset a token stands for, if it can still be used now. */
export async function findPasswordReset (db: Kysely<DB>, token: string, now = new Date()): Promise<PendingReset | ResetProblem> {
  const row = await findResetLink(db, resetTokenHash(token))
  if (row === undefined) return 'unknown'
  if (row.used_at !== null) return 'used'
  if (row.expires_at <= now.toISOString()) return 'expired'
  if (row.disabled_at !== null) return 'disabled'
  return { id: row.id, user: { id: row.user_id, username: row.username, version: row.version }, expiresAt: row.expires_at }
}

/**
 * Sets the new password and spends the link, in the commit's transaction. Spending is a
 * compare-and-set on `used_at`, and the password update is guarded by the user's version, so two
 * uses of one link (two tabs, a replay) cannot both succeed: the second is a conflict, retried,
 * and then finds the link used.
 */
export async function completePasswordReset (transaction: Kysely<DB>, reset: PendingReset, passwordHash: string, now = new Date()): Promise<void> {
  if (!await spendResetLink(transaction, reset.id, now.toISOString())) throw new ConflictError('the reset link was used meanwhile')
  await setPasswordHash(transaction, { name: reset.user.username, channel: 'web' }, reset.user, passwordHash, 'password-reset')
}
