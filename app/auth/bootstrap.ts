import { randomBytes } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { DB } from '../db/schema.js'
import { hashPassword } from './passwords.js'
import { countManagers, findUserWithHash, insertUser } from './users.js'

export const FIRST_MANAGER = 'admin'

/**
 * A new site needs someone who can manage it: when no manager exists, create `admin` with a
 * random password, which the caller prints once. Returns undefined when nothing was created.
 */
export async function ensureManager (db: Kysely<DB>): Promise<{ username: string, password: string } | undefined> {
  if (await countManagers(db) > 0) return undefined
  if (await findUserWithHash(db, FIRST_MANAGER) !== undefined) return undefined
  const password = randomBytes(12).toString('base64url')
  await insertUser(db, { username: FIRST_MANAGER, passwordHash: await hashPassword(password), role: 'manager' })
  return { username: FIRST_MANAGER, password }
}
