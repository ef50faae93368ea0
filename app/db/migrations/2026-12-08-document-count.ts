import { sql, type Kysely } from 'kysely'
import { isSqlite } from './dialect.js'

/**
 * How many documents there are, kept by the database itself in one row: every listing page
 * shows the total, and `count(*)` reads every row (8 ms per page on PostgreSQL at 100,000
 * documents). Triggers keep it on every path that adds or removes documents: edits, seeding,
 * an import. On PostgreSQL one statement-level trigger per statement (a seed or an import
 * batch adds hundreds of rows at once); the row's lock makes concurrent creates and deletes
 * take turns for the rest of their commit.
 */
export async function up (db: Kysely<any>): Promise<void> {
  await db.schema.createTable('document_count')
    .addColumn('id', 'integer', (c) => c.primaryKey().check(sql`id = 1`))
    .addColumn('n', 'integer', (c) => c.notNull())
    .execute()
  // No document may be added or removed between the count and the triggers (an older instance
  // still running during a rolling upgrade): SQLite's migration holds the write lock already.
  if (!isSqlite(db)) await sql`lock table document in share row exclusive mode`.execute(db)
  await sql`insert into document_count (id, n) select 1, count(*) from document`.execute(db)
  if (isSqlite(db)) {
    await sql`create trigger document_added after insert on document begin update document_count set n = n + 1; end`.execute(db)
    await sql`create trigger document_removed after delete on document begin update document_count set n = n - 1; end`.execute(db)
    return
  }
  await sql`
    create function document_count_follow() returns trigger language plpgsql as $$
    declare
      changed bigint;
    begin
      -- A statement that added or removed nothing (a version that did not match, a seed batch
      -- whose slugs were all taken) leaves the row, and its lock, alone.
      if tg_op = 'INSERT' then
        select count(*) into changed from added;
        if changed > 0 then update document_count set n = n + changed; end if;
      elsif tg_op = 'DELETE' then
        select count(*) into changed from removed;
        if changed > 0 then update document_count set n = n - changed; end if;
      else
        update document_count set n = 0;
      end if;
      return null;
    end $$`.execute(db)
  await sql`create trigger document_added after insert on document referencing new table as added for each statement execute function document_count_follow()`.execute(db)
  await sql`create trigger document_removed after delete on document referencing old table as removed for each statement execute function document_count_follow()`.execute(db)
  await sql`create trigger document_truncated after truncate on document for each statement execute function document_count_follow()`.execute(db)
}

export async function down (db: Kysely<any>): Promise<void> {
  if (isSqlite(db)) {
    await sql`drop trigger document_added`.execute(db)
    await sql`drop trigger document_removed`.execute(db)
  } else {
    for (const trigger of ['document_added', 'document_removed', 'document_truncated']) await sql`drop trigger ${sql.id(trigger)} on document`.execute(db)
    await sql`drop function document_count_follow()`.execute(db)
  }
  await db.schema.dropTable('document_count').execute()
}
