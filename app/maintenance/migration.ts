import { SqliteAdapter, sql, type Kysely, type Migration } from 'kysely'

/**
 * The plugin's tables, as a Kysely migration an application adds to its own list:
 * the shared state (one row), the audit log, and the registry of instances.
 */
export const maintenanceMigration: Migration = {
  async up (db: Kysely<any>) {
    const sqlite = db.getExecutor().adapter instanceof SqliteAdapter
    await db.schema.createTable('maintenance_state')
      .addColumn('id', 'integer', (c) => c.primaryKey().check(sql`id = 1`))
      .addColumn('mode', 'text', (c) => c.notNull().check(sql`mode in ('normal', 'concurrent', 'exclusive')`))
      .addColumn('maintainer', 'text')
      .addColumn('reason', 'text')
      .addColumn('since', 'text', (c) => c.notNull())
      .addColumn('until', 'text')
      .addColumn('version', 'integer', (c) => c.notNull())
      .addColumn('changed_by', 'text')
      .addColumn('changed_at', 'text', (c) => c.notNull())
      .execute()
    const now = new Date().toISOString()
    await db.insertInto('maintenance_state')
      .values({ id: 1, mode: 'normal', since: now, version: 1, changed_at: now })
      .execute()

    await db.schema.createTable('maintenance_log')
      .addColumn('id', sqlite ? 'integer' : 'serial', (c) => sqlite ? c.primaryKey().autoIncrement() : c.primaryKey())
      .addColumn('at', 'text', (c) => c.notNull())
      .addColumn('actor', 'text', (c) => c.notNull())
      .addColumn('channel', 'text', (c) => c.notNull())
      .addColumn('instance', 'text', (c) => c.notNull())
      .addColumn('from_mode', 'text', (c) => c.notNull())
      .addColumn('to_mode', 'text', (c) => c.notNull())
      .addColumn('reason', 'text')
      .addColumn('until', 'text')
      .addColumn('expected_version', 'integer', (c) => c.notNull())
      .addColumn('new_version', 'integer')
      .addColumn('outcome', 'text', (c) => c.notNull())
      .addColumn('detail', 'text')
      .execute()

    await db.schema.createTable('maintenance_instance')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('address', 'text')
      .addColumn('started_at', 'text', (c) => c.notNull())
      .addColumn('heartbeat_at', 'text', (c) => c.notNull())
      .addColumn('state_version', 'integer', (c) => c.notNull())
      .addColumn('requests_in_flight', 'integer', (c) => c.notNull())
      .addColumn('writes_in_flight', 'integer', (c) => c.notNull())
      .execute()
  },

  async down (db: Kysely<any>) {
    await db.schema.dropTable('maintenance_instance').execute()
    await db.schema.dropTable('maintenance_log').execute()
    await db.schema.dropTable('maintenance_state').execute()
  },
}

/** Scheduled maintenance windows (added after the first release of the plugin's tables). */
export const maintenanceWindowsMigration: Migration = {
  async up (db: Kysely<any>) {
    const sqlite = db.getExecutor().adapter instanceof SqliteAdapter
    await db.schema.createTable('maintenance_window')
      .addColumn('id', sqlite ? 'integer' : 'serial', (c) => sqlite ? c.primaryKey().autoIncrement() : c.primaryKey())
      .addColumn('mode', 'text', (c) => c.notNull().check(sql`mode in ('concurrent', 'exclusive')`))
      .addColumn('reason', 'text')
      .addColumn('starts_at', 'text', (c) => c.notNull())
      .addColumn('ends_at', 'text', (c) => c.notNull())
      .addColumn('created_by', 'text', (c) => c.notNull())
      .addColumn('created_at', 'text', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull().check(sql`state in ('scheduled', 'active', 'done', 'cancelled', 'skipped')`))
      .addColumn('started_version', 'integer')
      .addColumn('note', 'text')
      .execute()
    await db.schema.createIndex('maintenance_window_state').on('maintenance_window').columns(['state', 'starts_at']).execute()
  },

  async down (db: Kysely<any>) {
    await db.schema.dropTable('maintenance_window').execute()
  },
}

/** Every migration of the plugin, in order, named for a Kysely `Migrator` provider. */
/** What each instance says about itself besides its counts (the `describeInstance` option), as JSON. */
export const maintenanceInstanceDetailsMigration: Migration = {
  async up (db: Kysely<any>) {
    await db.schema.alterTable('maintenance_instance').addColumn('details', 'text').execute()
  },
  async down (db: Kysely<any>) {
    await db.schema.alterTable('maintenance_instance').dropColumn('details').execute()
  },
}

export const maintenanceMigrations: Record<string, Migration> = {
  '2026-11-22-maintenance': maintenanceMigration,
  '2026-11-23-maintenance-windows': maintenanceWindowsMigration,
  '2026-12-05-maintenance-instance-details': maintenanceInstanceDetailsMigration,
}
