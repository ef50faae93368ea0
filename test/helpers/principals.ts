import type { FastifyInstance } from 'fastify'
import type { Database } from '../../app/db/database.js'
import { addUser, basicAuth, csrfTokenIn, sessionCookieOf, type Browser } from './app.js'
import { addEmergencyUser } from './maintenance.js'

/**
 * The five kinds of people the authorization rules tell apart (PRODUCT §1, §2): a visitor, a
 * member, a manager who is not the maintainer, the manager who switched the mode (the
 * maintainer; in normal mode just another manager) and the emergency user of the access file.
 */
export const PRINCIPALS = ['anonymous', 'member', 'manager', 'maintainer', 'emergency'] as const
export type PrincipalKind = typeof PRINCIPALS[number]
export type Account = Exclude<PrincipalKind, 'anonymous'>

export const ACCOUNTS: Record<Account, { username: string, password: string }> = {
  member: { username: 'ann', password: 'ann-password' },
  manager: { username: 'deputy', password: 'deputy-password' },
  maintainer: { username: 'boss', password: 'boss-password' },
  emergency: { username: 'root', password: 'root-emergency-pw' },
}

export function basicOf (account: Account): string {
  return basicAuth(ACCOUNTS[account].username, ACCOUNTS[account].password)
}

const EVERYONE: readonly Account[] = ['member', 'manager', 'maintainer', 'emergency']

/**
 * Adds `accounts` (everyone, unless named) to a site, in that order: the member and the two
 * managers as users of its database, the emergency user to its access file (`config` is needed
 * for them only).
 */
export async function addPrincipals (site: { database: Database, config?: { accessFile: string } }, accounts: readonly Account[] = EVERYONE): Promise<void> {
  for (const account of accounts) {
    const { username, password } = ACCOUNTS[account]
    if (account === 'emergency') {
      if (site.config === undefined) throw new Error('the emergency user goes into the access file: pass the site\'s config')
      await addEmergencyUser({ config: site.config }, username, password)
    } else {
      await addUser(site.database, username, account === 'member' ? 'member' : 'manager', password)
    }
  }
}

let nextAddress = 0

/**
 * A client address of its own for each sign-in, so that the sign-in limits (per address and per
 * account) never answer a test that signs in a few times with 429.
 */
export function freshAddress (): string {
  nextAddress++
  return `10.${(nextAddress >> 16) & 255}.${(nextAddress >> 8) & 255}.${nextAddress & 255}`
}

/** A visitor's browser: the session the sign-in page starts, and the CSRF token of its form. */
export async function anonymousBrowser (app: FastifyInstance): Promise<Browser> {
  const page = await app.inject({ url: '/login', remoteAddress: freshAddress() })
  if (page.statusCode !== 200) throw new Error(`the sign-in page answered ${page.statusCode}`)
  return { cookie: sessionCookieOf(page)!, csrf: csrfTokenIn(page.body) }
}

/** Signs `account` in through the sign-in form, as a browser does, from an address of its own. */
export async function signedInBrowser (app: FastifyInstance, account: Account): Promise<Browser> {
  const anonymous = await anonymousBrowser(app)
  const { username, password } = ACCOUNTS[account]
  const response = await app.inject({
    method: 'POST',
    url: '/login',
    remoteAddress: freshAddress(),
    headers: { cookie: anonymous.cookie, 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ username, password, _csrf: anonymous.csrf }).toString(),
  })
  if (response.statusCode !== 303) throw new Error(`sign-in as ${username} failed: ${response.statusCode}`)
  const cookie = sessionCookieOf(response)!
  const page = await app.inject({ url: '/login', headers: { cookie } })
  return { cookie: sessionCookieOf(page) ?? cookie, csrf: csrfTokenIn(page.body) }
}

export async function browserOf (app: FastifyInstance, principal: PrincipalKind): Promise<Browser> {
  return principal === 'anonymous' ? anonymousBrowser(app) : signedInBrowser(app, principal)
}
