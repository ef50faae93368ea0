import type { Kysely } from 'kysely'

/**
 * Each commit records the maintenance state version it was applied under, so that a recorded
 * history of requests can be checked against the mode changes exactly (test/chaos.test.ts).
 */
export async function up (db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('commit_log').addColumn('state_version', 'integer').execute()
}

export async function down (db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('commit_log').dropColumn('state_version').execute()
}
