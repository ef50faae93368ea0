import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { expect } from 'vitest'
import { writeEmergencyUser } from '../../app/auth/access-file.js'
import { hashPassword } from '../../app/auth/passwords.js'
import type { Database } from '../../app/db/database.js'
import type { Mode, PublicState } from '../../app/maintenance/index.js'
import type { TestSite } from './app.js'

/** The one `maintenance_state` row, as committed. */
export async function stateRow (database: Database) {
  return database.writer.selectFrom('maintenance_state').selectAll().where('id', '=', 1).executeTakeFirstOrThrow()
}

/** Every `maintenance_log` row, oldest first. */
export async function logRows (database: Database) {
  return database.writer.selectFrom('maintenance_log').selectAll().orderBy('id').execute()
}

export async function logCount (database: Database): Promise<number> {
  return (await logRows(database)).length
}

/** The audit rows written since `count` rows were there. */
export async function logRowsAfter (database: Database, count: number) {
  return (await logRows(database)).slice(count)
}

/** Writes the emergency user into the site's access file (replacing any other). */
export async function addEmergencyUser (site: { config: Pick<TestSite['config'], 'accessFile'> }, name: string, password: string): Promise<void> {
  await writeEmergencyUser(site.config.accessFile, name, await hashPassword(password))
}

export async function readState (app: FastifyInstance, authorization?: string): Promise<PublicState> {
  const response = await app.inject({ url: '/api/maintenance', headers: authorization === undefined ? {} : { authorization } })
  expect(response.statusCode).toBe(200)
  return response.json()
}

export async function putState (app: FastifyInstance, authorization: string | undefined, body: Record<string, unknown>): Promise<LightMyRequestResponse> {
  return app.inject({
    method: 'PUT',
    url: '/api/maintenance',
    headers: authorization === undefined ? {} : { authorization },
    payload: body,
  })
}

/** Changes the mode as `authorization`, based on the current version; fails the test if refused. */
export async function switchTo (app: FastifyInstance, authorization: string, mode: Mode, extra: { reason?: string | null, until?: string | null } = {}): Promise<PublicState> {
  const { version } = await readState(app)
  const response = await putState(app, authorization, { mode, expectedVersion: version, ...extra })
  expect(response.statusCode, response.body).toBe(200)
  return response.json()
}

/** Returns the site to normal as `authorization` (the maintainer or the emergency user), if it is not. */
export async function backToNormal (app: FastifyInstance, authorization: string): Promise<void> {
  const { mode } = await readState(app)
  if (mode !== 'normal') await switchTo(app, authorization, 'normal')
}

export const ISO_TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/

/** An ISO timestamp within [before, now]. */
export function expectRecent (value: string, before: number): void {
  expect(value).toMatch(ISO_TIMESTAMP)
  expect(Date.parse(value)).toBeGreaterThanOrEqual(before)
  expect(Date.parse(value)).toBeLessThanOrEqual(Date.now())
}

/** `seconds` from now, as the ISO string the site stores. */
export function fromNow (seconds: number): string {
  return new Date(Date.now() + seconds * 1000).toISOString()
}
