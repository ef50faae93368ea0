import { randomBytes } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { DB } from '../db/schema.js'
import { hashPassword } from './passwords.js'
import { countManagers, findUserWithHash, insertUser } from './users.js'

const FIRST_MANAGER = 'admin'

export interface FirstManager {
  username: string
  password: string
  passwordHash: string
}

/** A random password for the first manager, hashed ahead (outside any transaction). */
export async function newFirstManager (): Promise<FirstManager> {
  const password = randomBytes(12).toString('base64url')
  return { username: FIRST_MANAGER, password, passwordHash: await hashPassword(password) }
}

/**
 * A new site needs someone who can manage it: when no manager exists, create `admin` with
 * the given password, which the caller prints once. Returns undefined when nothing was created.
 */
export async function ensureManager (db: Kysely<DB>, candidate: FirstManager): Promise<FirstManager | undefined> {
  if (await countManagers(db) > 0) return undefined
  if (await findUserWithHash(db, candidate.username) !== undefined) return undefined
  await insertUser(db, { username: candidate.username, passwordHash: candidate.passwordHash, role: 'manager' })
  return candidate
}
