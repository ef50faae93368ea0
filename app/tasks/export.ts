import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { setImmediate as yieldToEventLoop } from 'node:timers/promises'
import type { Writable } from 'node:stream'
import { sql, type Kysely } from 'kysely'
import type { Catalog } from '../content/catalog.js'
import type { Database } from '../db/database.js'
import type { DB } from '../db/schema.js'
import { lastCommit as lastCommitIn, recordImportedCommit } from '../unit-of-work/commit-log.js'

/**
 * The export format, version 1: JSON Lines, UTF-8.
 *
 *   {"format":"quiesce-export","version":1,"lastCommit":N,"tables":[...]}
 *   {"table":"app_user","columns":[...],"rows":R}     then R lines, each a JSON array of values
 *   … one such section per table, in the order of "tables" …
 *   {"end":true,"sha256":"…"}                           of every byte before this line
 *
 * Rows are in primary-key order and values are the stored ones (timestamps are ISO-8601
 * strings in both databases), so the same data gives the same bytes on SQLite and PostgreSQL.
 * `lastCommit` is the last unit-of-work commit in the snapshot (see commit_log). The catalog is
 * not exported: it is derived, and rebuilt on import. Sessions, tasks and instances are not data.
 */
export const EXPORT_FORMAT = 'quiesce-export'
export const EXPORT_VERSION = 1

const TABLES = {
  app_user: ['id', 'username', 'password_hash', 'role', 'version', 'created_at', 'updated_at', 'disabled_at', 'disabled_by'],
  document: ['id', 'slug', 'title', 'body', 'version', 'created_by', 'created_at', 'updated_by', 'updated_at'],
  maintenance_state: ['id', 'mode', 'maintainer', 'reason', 'since', 'until', 'version', 'changed_by', 'changed_at'],
  maintenance_log: ['id', 'at', 'actor', 'channel', 'instance', 'from_mode', 'to_mode', 'reason', 'until', 'expected_version', 'new_version', 'outcome', 'detail'],
  maintenance_window: ['id', 'mode', 'reason', 'starts_at', 'ends_at', 'created_by', 'created_at', 'state', 'started_version', 'note'],
  user_log: ['id', 'at', 'actor', 'channel', 'username', 'action', 'detail'],
} as const satisfies Partial<Record<keyof DB, readonly string[]>>
type ExportedTable = keyof typeof TABLES
const TABLE_NAMES = Object.keys(TABLES) as ExportedTable[]
/** Tables whose ids come from a sequence that must follow the imported ids (PostgreSQL). */
const SERIAL_TABLES = ['app_user', 'document', 'maintenance_log', 'maintenance_window', 'user_log', 'commit_log'] as const
const PAGE = 1000

interface ExportSummary {
  lastCommit: number
  rows: Record<string, number>
  bytes: number
}

export class ImportError extends Error {
  override name = 'ImportError'
}

/**
 * Writes a consistent snapshot of all data, taken in one read-only transaction (PostgreSQL
 * REPEATABLE READ; a SQLite read transaction in WAL mode) while writes go on.
 */
export async function writeExport (database: Database, output: Writable, onProgress?: (done: number, total: number) => void): Promise<ExportSummary> {
  const reader = database.openSnapshotReader()
  try {
    return await writeSnapshot(reader.db, output, onProgress)
  } finally {
    await reader.close()
  }
}

async function writeSnapshot (reader: Kysely<DB>, output: Writable, onProgress?: (done: number, total: number) => void): Promise<ExportSummary> {
  const hash = createHash('sha256')
  let bytes = 0
  async function line (value: unknown): Promise<void> {
    const text = JSON.stringify(value) + '\n'
    hash.update(text)
    bytes += Buffer.byteLength(text)
    if (!output.write(text)) await once(output, 'drain')
  }

  const summary = await reader.transaction().setIsolationLevel('repeatable read').setAccessMode('read only').execute(async (snapshot) => {
    // The first statement fixes the snapshot; everything below reads that one point in time.
    const lastCommit = await lastCommitIn(snapshot)
    const counts: Record<string, number> = {}
    for (const table of TABLE_NAMES) {
      const row = await (snapshot as Kysely<any>).selectFrom(table).select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()
      counts[table] = Number(row.n)
    }
    const total = Object.values(counts).reduce((sum, n) => sum + n, 0)
    let done = 0
    await line({ format: EXPORT_FORMAT, version: EXPORT_VERSION, lastCommit, tables: TABLE_NAMES })
    for (const table of TABLE_NAMES) {
      const columns = TABLES[table]
      await line({ table, columns, rows: counts[table] })
      let after = -1
      for (;;) {
        // Let the instance answer requests between two pages (SQLite reads synchronously).
        await yieldToEventLoop()
        const rows = await (snapshot as Kysely<any>).selectFrom(table).select([...columns])
          .where('id', '>', after).orderBy('id').limit(PAGE).execute()
        for (const row of rows) await line(columns.map((column) => row[column] ?? null))
        done += rows.length
        onProgress?.(done, total)
        if (rows.length < PAGE) break
        after = rows.at(-1)!.id as number
      }
    }
    return { lastCommit, rows: counts }
  })
  const end = JSON.stringify({ end: true, sha256: hash.digest('hex') }) + '\n'
  bytes += Buffer.byteLength(end)
  if (!output.write(end)) await once(output, 'drain')
  return { ...summary, bytes }
}

interface ParsedExport {
  lastCommit: number
  sections: Array<{ table: ExportedTable, columns: string[], rows: unknown[][] }>
}

/** Reads and checks a whole export file; refuses a truncated or altered one before anything is written. */
async function readExport (file: string): Promise<ParsedExport> {
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity })
  const hash = createHash('sha256')
  let header: { lastCommit: number, tables: ExportedTable[] } | undefined
  const sections: ParsedExport['sections'] = []
  let current: ParsedExport['sections'][number] & { expected: number } | undefined
  let ended = false
  let number = 0
  try {
    for await (const text of lines) {
      number++
      if (ended) throw new ImportError(`line ${number}: there is more after the end line`)
      const value = parseLine(text, number)
      if (number === 1) {
        header = checkHeader(value)
      } else if (isEnd(value)) {
        if (current !== undefined && current.rows.length !== current.expected) throw new ImportError(`table ${current.table}: expected ${current.expected} rows, found ${current.rows.length} (the file is truncated or altered)`)
        if (value.sha256 !== hash.digest('hex')) throw new ImportError('the checksum does not match: the file was altered or damaged')
        ended = true
        continue
      } else if (current === undefined || current.rows.length === current.expected) {
        if (current !== undefined) sections.push(current)
        current = checkSection(value, number, header!.tables[sections.length])
      } else {
        // A section header where a row should be: rows are missing (a cut or an edited file).
        if (value !== null && typeof value === 'object' && !Array.isArray(value) && 'table' in value) throw new ImportError(`table ${current.table}: expected ${current.expected} rows, found ${current.rows.length} (the file is truncated or altered)`)
        if (!Array.isArray(value) || value.length !== current.columns.length) throw new ImportError(`line ${number}: a row of ${current.table} must be an array of ${current.columns.length} values`)
        current.rows.push(value)
      }
      hash.update(text + '\n')
    }
  } catch (err) {
    if (err instanceof ImportError) throw err
    throw new ImportError(`cannot read ${file}: ${(err as Error).message}`)
  }
  if (header === undefined) throw new ImportError('the file is empty')
  if (!ended) throw new ImportError('the file ends before its end line: it is truncated')
  if (current !== undefined) sections.push(current)
  if (sections.length !== header.tables.length) throw new ImportError(`expected ${header.tables.length} tables, found ${sections.length}`)
  return { lastCommit: header.lastCommit, sections }
}

function parseLine (text: string, number: number): any {
  try {
    return JSON.parse(text)
  } catch {
    throw new ImportError(`line ${number} is not JSON: the file is damaged`)
  }
}

function isEnd (value: any): value is { end: true, sha256: string } {
  return value !== null && typeof value === 'object' && value.end === true
}

function checkHeader (value: any): { lastCommit: number, tables: ExportedTable[] } {
  if (value?.format !== EXPORT_FORMAT) throw new ImportError('this is not a Quiesce export (no "quiesce-export" header)')
  if (value.version !== EXPORT_VERSION) throw new ImportError(`export format version ${value.version} is not supported (this Quiesce reads version ${EXPORT_VERSION})`)
  if (!Number.isInteger(value.lastCommit) || value.lastCommit < 0) throw new ImportError('the header has no valid lastCommit')
  if (!Array.isArray(value.tables) || value.tables.join() !== TABLE_NAMES.join()) throw new ImportError(`the header must list the tables ${TABLE_NAMES.join(', ')}`)
  return { lastCommit: value.lastCommit, tables: value.tables }
}

function checkSection (value: any, number: number, expectedTable: ExportedTable | undefined): ParsedExport['sections'][number] & { expected: number } {
  if (expectedTable === undefined || value?.table !== expectedTable) throw new ImportError(`line ${number}: expected the ${expectedTable ?? 'end'} section`)
  if (!Array.isArray(value.columns) || value.columns.join() !== TABLES[expectedTable].join()) throw new ImportError(`line ${number}: unexpected columns for ${expectedTable}`)
  if (!Number.isInteger(value.rows) || value.rows < 0) throw new ImportError(`line ${number}: no row count for ${expectedTable}`)
  return { table: expectedTable, columns: value.columns, rows: [], expected: value.rows }
}

/** Why `database` cannot take an import, or undefined when it is empty. */
async function nonEmptyReason (db: Kysely<DB>): Promise<string | undefined> {
  for (const table of ['app_user', 'document', 'maintenance_log', 'maintenance_window', 'user_log'] as const) {
    const row = await db.selectFrom(table).select('id').limit(1).executeTakeFirst()
    if (row !== undefined) return `the database is not empty (it has rows in ${table}); import only into a new, empty database`
  }
  return undefined
}

/**
 * Loads an export into an empty database of either kind, in one transaction, and rebuilds the
 * catalog from the imported documents. The file is checked in full first.
 */
export async function importExport (database: Database, catalog: Catalog, file: string): Promise<ExportSummary> {
  const parsed = await readExport(file)
  const rows: Record<string, number> = {}
  await database.writer.transaction().execute(async (transaction) => {
    const reason = await nonEmptyReason(transaction)
    if (reason !== undefined) throw new ImportError(reason)
    for (const section of parsed.sections) {
      rows[section.table] = section.rows.length
      const records = section.rows.map((values) => Object.fromEntries(section.columns.map((column, i) => [column, values[i]])))
      // The state row is there already (its migration made it): restored in place.
      if (section.table === 'maintenance_state') {
        for (const record of records) await (transaction as Kysely<any>).updateTable(section.table).set(record).where('id', '=', record.id).execute()
        continue
      }
      for (let i = 0; i < records.length; i += 200) {
        await (transaction as Kysely<any>).insertInto(section.table).values(records.slice(i, i + 200)).execute()
      }
    }
    const documents = parsed.sections.find((section) => section.table === 'document')!
    for (let i = 0; i < documents.rows.length; i += 200) {
      await catalog.insertMany(transaction, documents.rows.slice(i, i + 200).map((values) => ({
        documentId: values[0] as number, slug: values[1] as string, title: values[2] as string, body: values[3] as string,
      })))
    }
    if (parsed.lastCommit > 0) {
      await recordImportedCommit(transaction, parsed.lastCommit)
    }
    if (database.kind === 'postgres') {
      for (const table of SERIAL_TABLES) {
        await sql`select setval(pg_get_serial_sequence(${table}, 'id'), coalesce((select max(id) from ${sql.table(table)}), 0) + 1, false)`.execute(transaction)
      }
    }
  })
  return { lastCommit: parsed.lastCommit, rows, bytes: 0 }
}
