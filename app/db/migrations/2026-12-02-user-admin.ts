import { sql, type Kysely } from 'kysely'
import { isSqlite, serialPrimaryKey } from './dialect.js'

export async function up (db: Kysely<any>): Promise<void> {
  const sqlite = isSqlite(db)
  // A disabled user cannot sign in; the row stays, so their name in documents and logs stays theirs.
  await db.schema.alterTable('app_user').addColumn('disabled_at', 'text').execute()
  await db.schema.alterTable('app_user').addColumn('disabled_by', 'text').execute()

  // Who a session belongs to, so that disabling someone or resetting their password ends their
  // sessions with one indexed delete. Sessions from before this migration are named from their data.
  await db.schema.alterTable('session').addColumn('principal', 'text').execute()
  await db.schema.createIndex('session_principal').on('session').column('principal').execute()
  await (sqlite
    ? sql`update session set principal = json_extract(data, '$.principal.name') where json_valid(data)`
    : sql`update session set principal = data::json->'principal'->>'name'`).execute(db)

  // One-time links a manager hands to someone to set a new password; only a hash of the token is kept.
  await db.schema.createTable('password_reset')
    .addColumn('id', serialPrimaryKey(db), (c) => sqlite ? c.primaryKey().autoIncrement() : c.primaryKey())
    .addColumn('user_id', 'integer', (c) => c.notNull())
    .addColumn('token_hash', 'text', (c) => c.notNull().unique())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .addColumn('used_at', 'text')
    .execute()
  await db.schema.createIndex('password_reset_user').on('password_reset').column('user_id').execute()

  // The audit log of user administration: who did what to whom, when, through which channel.
  await db.schema.createTable('user_log')
    .addColumn('id', serialPrimaryKey(db), (c) => sqlite ? c.primaryKey().autoIncrement() : c.primaryKey())
    .addColumn('at', 'text', (c) => c.notNull())
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('channel', 'text', (c) => c.notNull())
    .addColumn('username', 'text', (c) => c.notNull())
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('detail', 'text')
    .execute()
}

export async function down (db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('user_log').execute()
  await db.schema.dropTable('password_reset').execute()
  await db.schema.dropIndex('session_principal').execute()
  await db.schema.alterTable('session').dropColumn('principal').execute()
  await db.schema.alterTable('app_user').dropColumn('disabled_by').execute()
  await db.schema.alterTable('app_user').dropColumn('disabled_at').execute()
}
