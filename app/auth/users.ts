import type { Kysely } from 'kysely'
import type { DB, Role } from '../db/schema.js'

export interface User {
  id: number
  username: string
  role: Role
  version: number
  createdAt: string
}

export function isRole (value: unknown): value is Role {
  return value === 'member' || value === 'manager'
}

export async function findUserWithHash (db: Kysely<DB>, username: string) {
  return db.selectFrom('app_user')
    .select(['id', 'username', 'role', 'password_hash'])
    .where('username', '=', username)
    .executeTakeFirst()
}

export async function listUsers (db: Kysely<DB>): Promise<User[]> {
  const rows = await db.selectFrom('app_user')
    .select(['id', 'username', 'role', 'version', 'created_at'])
    .orderBy('username')
    .execute()
  return rows.map((row) => ({ id: row.id, username: row.username, role: row.role, version: row.version, createdAt: row.created_at }))
}

export async function countManagers (db: Kysely<DB>): Promise<number> {
  const row = await db.selectFrom('app_user')
    .select((eb) => eb.fn.countAll<string | number>().as('n'))
    .where('role', '=', 'manager')
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

/** Returns false when no such user exists. */
export async function updatePasswordHash (db: Kysely<DB>, username: string, passwordHash: string): Promise<boolean> {
  const result = await db.updateTable('app_user')
    .set((eb) => ({ password_hash: passwordHash, version: eb('version', '+', 1), updated_at: new Date().toISOString() }))
    .where('username', '=', username)
    .executeTakeFirst()
  return result.numUpdatedRows > 0n
}
