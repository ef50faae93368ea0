import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { setImmediate as yieldToEventLoop } from 'node:timers/promises'
import type { Readable, Writable } from 'node:stream'
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

/** Rows per insert statement, and per batch that {@link readExport} hands on. */
const IMPORT_BATCH = 200

/** Rows of one table, in file order, as {@link readExport} hands them on. */
export interface ExportBatch {
  table: ExportedTable
  columns: readonly string[]
  rows: unknown[][]
}

interface CheckedExport {
  lastCommit: number
  /** Of every byte before the end line (the end line says the same). */
  sha256: string
  /** Rows per table, in the order of the file. */
  rows: Record<string, number>
}

interface Section {
  table: ExportedTable
  columns: readonly string[]
  expected: number
  seen: number
  /** Rows read and not handed on yet. */
  batch: unknown[][]
}

/**
 * Reads an export as it streams in and checks each line as it comes: the header, each
 * section's columns and row count, each row's shape, the end line and its checksum. The rows
 * go to `onBatch` in file order, at most {@link IMPORT_BATCH} at a time, and the next lines are
 * read only once it is done with them, so memory stays flat however large the file is. A file
 * that is found wanting throws {@link ImportError} at the line where it is found: the rows
 * before it have been handed on by then. `source` names the input in a read error.
 */
export async function readExport (input: Readable, source: string, onBatch: (batch: ExportBatch) => Promise<void>): Promise<CheckedExport> {
  const lines = createInterface({ input, crlfDelay: Infinity })[Symbol.asyncIterator]()
  const hash = createHash('sha256')
  let header: { lastCommit: number, tables: ExportedTable[] } | undefined
  let current: Section | undefined
  let sections = 0
  const rows: Record<string, number> = {}
  let sha256: string | undefined
  let number = 0
  const handOn = async () => {
    if (current === undefined || current.batch.length === 0) return
    const batch = { table: current.table, columns: current.columns, rows: current.batch }
    current.batch = []
    await onBatch(batch)
  }
  try {
    for (;;) {
      let next: IteratorResult<string>
      try {
        next = await lines.next()
      } catch (err) {
        throw new ImportError(`cannot read ${source}: ${(err as Error).message}`)
      }
      if (next.done === true) break
      const text = next.value
      number++
      if (sha256 !== undefined) throw new ImportError(`line ${number}: there is more after the end line`)
      const value = parseLine(text, number)
      if (number === 1) {
        header = checkHeader(value)
      } else if (isEnd(value)) {
        if (current !== undefined && current.seen !== current.expected) throw missingRows(current)
        await handOn()
        const digest = hash.digest('hex')
        if (value.sha256 !== digest) throw new ImportError('the checksum does not match: the file was altered or damaged')
        sha256 = digest
        continue
      } else if (current === undefined || current.seen === current.expected) {
        await handOn()
        current = checkSection(value, number, header!.tables[sections])
        sections++
        rows[current.table] = current.expected
      } else {
        // A section header where a row should be: rows are missing (a cut or an edited file).
        if (value !== null && typeof value === 'object' && !Array.isArray(value) && 'table' in value) throw missingRows(current)
        if (!Array.isArray(value) || value.length !== current.columns.length) throw new ImportError(`line ${number}: a row of ${current.table} must be an array of ${current.columns.length} values`)
        current.batch.push(value)
        current.seen++
        if (current.batch.length === IMPORT_BATCH) await handOn()
      }
      hash.update(text + '\n')
    }
  } finally {
    await lines.return?.()
  }
  if (header === undefined) throw new ImportError('the file is empty')
  if (sha256 === undefined) throw new ImportError('the file ends before its end line: it is truncated')
  if (sections !== header.tables.length) throw new ImportError(`expected ${header.tables.length} tables, found ${sections}`)
  return { lastCommit: header.lastCommit, sha256, rows }
}

/** {@link readExport} of the file at `file`. */
async function readExportFile (file: string, onBatch: (batch: ExportBatch) => Promise<void>): Promise<CheckedExport> {
  const input = createReadStream(file, { encoding: 'utf8' })
  try {
    return await readExport(input, file, onBatch)
  } finally {
    input.destroy()
  }
}

function missingRows (section: Section): ImportError {
  return new ImportError(`table ${section.table}: expected ${section.expected} rows, found ${section.seen} (the file is truncated or altered)`)
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

function checkSection (value: any, number: number, expectedTable: ExportedTable | undefined): Section {
  if (expectedTable === undefined || value?.table !== expectedTable) throw new ImportError(`line ${number}: expected the ${expectedTable ?? 'end'} section`)
  if (!Array.isArray(value.columns) || value.columns.join() !== TABLES[expectedTable].join()) throw new ImportError(`line ${number}: unexpected columns for ${expectedTable}`)
  if (!Number.isInteger(value.rows) || value.rows < 0) throw new ImportError(`line ${number}: no row count for ${expectedTable}`)
  return { table: expectedTable, columns: TABLES[expectedTable], expected: value.rows, seen: 0, batch: [] }
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
 * catalog from the imported documents. The file is read twice, each time as a stream: first
 * checked in full, so that a damaged or foreign file is refused before anything is written,
 * then loaded (and checked again: a file that changed in between loads nothing).
 */
export async function importExport (database: Database, catalog: Catalog, file: string): Promise<ExportSummary> {
  const checked = await readExportFile(file, async () => {})
  await database.writer.transaction().execute(async (transaction) => {
    const reason = await nonEmptyReason(transaction)
    if (reason !== undefined) throw new ImportError(reason)
    const loaded = await readExportFile(file, (batch) => loadBatch(transaction, catalog, batch))
    if (loaded.sha256 !== checked.sha256) throw new ImportError(`${file} changed while it was imported; nothing was imported`)
    if (checked.lastCommit > 0) {
      await recordImportedCommit(transaction, checked.lastCommit)
    }
    if (database.kind === 'postgres') {
      for (const table of SERIAL_TABLES) {
        await sql`select setval(pg_get_serial_sequence(${table}, 'id'), coalesce((select max(id) from ${sql.table(table)}), 0) + 1, false)`.execute(transaction)
      }
    }
  })
  return { lastCommit: checked.lastCommit, rows: checked.rows, bytes: 0 }
}

/** Writes one batch of an import, and the catalog entries of its documents. */
async function loadBatch (transaction: Kysely<DB>, catalog: Catalog, batch: ExportBatch): Promise<void> {
  const records = batch.rows.map((values) => Object.fromEntries(batch.columns.map((column, i) => [column, values[i]])))
  // The state row is there already (its migration made it): restored in place.
  if (batch.table === 'maintenance_state') {
    for (const record of records) await (transaction as Kysely<any>).updateTable(batch.table).set(record).where('id', '=', record.id).execute()
    return
  }
  await (transaction as Kysely<any>).insertInto(batch.table).values(records).execute()
  if (batch.table === 'document') {
    await catalog.insertMany(transaction, batch.rows.map((values) => ({
      documentId: values[0] as number, slug: values[1] as string, title: values[2] as string, body: values[3] as string,
    })))
  }
}
