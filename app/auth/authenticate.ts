import type { Kysely } from 'kysely'
import type { DB } from '../db/schema.js'
import { findEmergencyUser, NAME_PATTERN } from './access-file.js'
import { hashPassword, verifyPassword } from './passwords.js'
import { principalFor, type Identity, type Principal } from './principal.js'
import { findUserWithHash, userVersion } from './users.js'

let dummyHash: Promise<string> | undefined

/**
 * Checks a user name and password. The access file is consulted first and without the
 * database, so the emergency user can sign in even when the users table cannot be read.
 * Unknown names cost as much as wrong passwords, so timing does not reveal who exists.
 */
export async function authenticate (db: Kysely<DB>, accessFile: string, username: string, password: string): Promise<Identity | undefined> {
  const emergency = await findEmergencyUser(accessFile, username)
  if (emergency !== undefined) {
    return await verifyPassword(emergency.hash, password) ? { name: emergency.name, role: 'emergency' } : undefined
  }
  // A name no user can have (NUL, say, which PostgreSQL cannot even compare) is not looked up.
  const user = NAME_PATTERN.test(username) ? await findUserWithHash(db, username) : undefined
  if (user === undefined) {
    dummyHash ??= hashPassword('no such user; this hash only equalises timing')
    await verifyPassword(await dummyHash, password)
    return undefined
  }
  // A disabled user is refused like a wrong password, after the same work.
  return await verifyPassword(user.password_hash, password) && user.disabled_at === null ? { name: user.username, role: user.role } : undefined
}

/** Who NAME is, without a password: for the command line, which is trusted like the database. A disabled user is nobody. */
export async function findPrincipal (db: Kysely<DB>, accessFile: string, name: string): Promise<Principal | undefined> {
  if (await findEmergencyUser(accessFile, name) !== undefined) return principalFor({ name, role: 'emergency' })
  const user = await findUserWithHash(db, name)
  return user === undefined || user.disabled_at !== null ? undefined : principalFor({ name: user.username, role: user.role })
}

/**
 * What a cache of verified credentials checks again on each use: the user's row version, which
 * every change of the user (password, role, disabling) moves on; undefined when there is no such user.
 */
export async function credentialsStamp (db: Kysely<DB>, name: string): Promise<number | undefined> {
  return userVersion(db, name)
}
