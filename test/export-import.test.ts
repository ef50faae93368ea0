import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { createWriteStream, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { PassThrough, Readable, Writable } from 'node:stream'
import { finished } from 'node:stream/promises'
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../app/app.js'
import { findUser, setDisabled } from '../app/auth/users.js'
import { main } from '../app/cli/main.js'
import { catalogFor } from '../app/content/catalog.js'
import { seedDocuments } from '../app/content/seed.js'
import { openDatabase, type Database } from '../app/db/database.js'
import { EXPORT_FORMAT, EXPORT_VERSION, ImportError, importExport, readExport, writeExport } from '../app/tasks/export.js'
import { addUser, basicAuth, csrfTokenIn, mainOf, signIn, startTestSite, testConfig, type TestSite } from './helpers/app.js'
import { createTestDatabase, DATABASE_KINDS, type DatabaseKind, type TestDatabase } from './helpers/databases.js'
import { readState, stateRow, switchTo } from './helpers/maintenance.js'
import { addPrincipals, basicOf, signedInBrowser } from './helpers/principals.js'
import { catalogRows, deferred, FINISHED, until } from './helpers/tasks.js'

const BOSS = basicOf('maintainer')
const ANN = basicOf('member')
const TABLES = ['app_user', 'document', 'maintenance_state', 'maintenance_log', 'maintenance_window', 'user_log'] as const
const COLUMNS = {
  app_user: ['id', 'username', 'password_hash', 'role', 'version', 'created_at', 'updated_at', 'disabled_at', 'disabled_by'],
  document: ['id', 'slug', 'title', 'body', 'version', 'created_by', 'created_at', 'updated_by', 'updated_at'],
  maintenance_state: ['id', 'mode', 'maintainer', 'reason', 'since', 'until', 'version', 'changed_by', 'changed_at'],
  maintenance_log: ['id', 'at', 'actor', 'channel', 'instance', 'from_mode', 'to_mode', 'reason', 'until', 'expected_version', 'new_version', 'outcome', 'detail'],
  maintenance_window: ['id', 'mode', 'reason', 'starts_at', 'ends_at', 'created_by', 'created_at', 'state', 'started_version', 'note'],
  user_log: ['id', 'at', 'actor', 'channel', 'username', 'action', 'detail'],
}
const TIMINGS = { heartbeatMs: 50, staleAfterMs: 2000, pollMs: 50 }

/** A Writable that keeps what it is given. */
function collector () {
  const chunks: Buffer[] = []
  const stream = new Writable({
    write (chunk: Buffer, _encoding, callback) {
      chunks.push(Buffer.from(chunk))
      callback()
    },
  })
  return { stream, bytes: () => Buffer.concat(chunks) }
}

async function exportOf (database: Database) {
  const sink = collector()
  const summary = await writeExport(database, sink.stream)
  return { summary, bytes: sink.bytes() }
}

function linesOf (bytes: Buffer): string[] {
  const lines = bytes.toString('utf8').split('\n')
  expect(lines.pop()).toBe('')
  return lines
}

async function lastCommitIn (database: Database): Promise<number> {
  const row = await database.writer.selectFrom('commit_log').select((eb) => eb.fn.max('id').as('id')).executeTakeFirst()
  return Number(row?.id ?? 0)
}

async function countOf (database: Database, table: string): Promise<number> {
  const { rows } = await sql<{ n: string | number }>`select count(*) as n from ${sql.table(table)}`.execute(database.writer)
  return Number(rows[0]!.n)
}

/** The tables as the export must show them: every row, by id, as arrays of the stored values. */
async function tableArrays (database: Database) {
  const result: Record<string, unknown[][]> = {}
  for (const table of TABLES) {
    const rows = await (database.writer as any).selectFrom(table).selectAll().orderBy('id').execute() as Array<Record<string, unknown>>
    result[table] = rows.map((row) => COLUMNS[table].map((column) => row[column] ?? null))
  }
  return result
}

function capture () {
  const stream = new PassThrough()
  let text = ''
  stream.on('data', (chunk: Buffer) => { text += chunk.toString() })
  return { stream, text: () => text }
}

function envFor (testDatabase: TestDatabase): NodeJS.ProcessEnv {
  const url = testDatabase.url.kind === 'sqlite' ? `sqlite:${testDatabase.url.file}` : testDatabase.url.url
  return { QUIESCE_DATA_DIR: testDatabase.dataDir, QUIESCE_DATABASE_URL: url, QUIESCE_LOG_LEVEL: 'silent', QUIESCE_INSTANCE_ID: 'cli' }
}

/** Runs `quiesce ...argv` in this process against `testDatabase`. */
async function quiesce (testDatabase: TestDatabase, argv: string[]) {
  const stdout = capture()
  const stderr = capture()
  const code = await main(argv, { stdin: Readable.from(['']), stdout: stdout.stream, stderr: stderr.stream, env: envFor(testDatabase) })
  return { code, stdout: stdout.text(), stderr: stderr.text() }
}

/** Documents whose text tests the format: quotes, markup, line and paragraph separators, emoji. */
const TRICKY = [
  { slug: 'creme-brulee', title: 'Crème brûlée — "quoted" & <b>bold</b> 🍮', body: 'Line one\nLine two\rafter a lone CR\u2028after U+2028\u2029after U+2029\u0085after NEL\n\ttab \\ backslash "quote" \u00e9\u0301 ∑ 𝄞' },
  { slug: 'empty-body', title: 'Nothing inside', body: '' },
  { slug: 'markdown-table', title: 'A table | with pipes', body: '| a | b |\n|---|---|\n| 1 | 2 |\n\n```js\nconsole.log("x")\n```\n' },
]

async function addContent (site: TestSite): Promise<void> {
  await addPrincipals(site, ['maintainer', 'member'])
  // A disabled user stays disabled, and the user log travels with them.
  await addUser(site.database, 'gone', 'member')
  await site.database.writer.transaction().execute(async (transaction) => {
    await setDisabled(transaction, { name: 'boss', channel: 'web' }, (await findUser(transaction, 'gone'))!, true, 1)
  })
  for (const doc of TRICKY) {
    const response = await site.app.inject({ method: 'PUT', url: `/api/docs/${doc.slug}`, headers: { authorization: ANN }, payload: { title: doc.title, body: doc.body } })
    expect(response.statusCode, response.body).toBe(201)
  }
  // An edited document (version 2), maintenance history with a refusal, and a state that is not the default.
  const edited = await site.app.inject({ method: 'PUT', url: '/api/docs/empty-body', headers: { authorization: ANN }, payload: { title: 'Nothing inside, edited', body: '' } })
  expect(edited.statusCode).toBe(200)
  await switchTo(site.app, BOSS, 'exclusive', { reason: 'moving house' })
  await switchTo(site.app, BOSS, 'normal')
  const { version } = await readState(site.app)
  const refused = await site.app.inject({ method: 'PUT', url: '/api/maintenance', headers: { authorization: ANN }, payload: { mode: 'concurrent', expectedVersion: version } })
  expect(refused.statusCode).toBe(403)
  // A scheduled window travels too.
  const window = await site.app.inject({ method: 'POST', url: '/api/maintenance/windows', headers: { authorization: BOSS }, payload: { mode: 'exclusive', reason: 'the move', startsAt: '2031-06-01T02:00:00.000Z', endsAt: '2031-06-01T04:00:00.000Z' } })
  expect(window.statusCode, window.body).toBe(201)
  await switchTo(site.app, BOSS, 'concurrent', { reason: 'export test: «state» travels', until: '2031-05-06T07:08:09.000Z' })
}

/**
 * The lines of a valid export with `documents` generated document rows (and no other rows),
 * cut into chunks of `chunkSize` characters regardless of line ends; `produced` counts the
 * document rows whose line has been given out in full so far.
 */
function syntheticExport (documents: number, chunkSize: number) {
  const counter = { produced: 0 }
  function * lines (): Generator<{ text: string, isRow: boolean }> {
    yield { text: JSON.stringify({ format: EXPORT_FORMAT, version: EXPORT_VERSION, lastCommit: 7, tables: TABLES }), isRow: false }
    for (const table of TABLES) {
      const count = table === 'document' ? documents : 0
      yield { text: JSON.stringify({ table, columns: COLUMNS[table], rows: count }), isRow: false }
      for (let id = 1; id <= count; id++) {
        const at = '2026-12-01T00:00:00.000Z'
        yield { text: JSON.stringify([id, `doc-${id}`, `Document ${id}`, `The text of document ${id}, long enough to weigh something: ${'words '.repeat(20)}`, 1, 'seed', at, 'seed', at]), isRow: true }
      }
    }
  }
  async function * chunks (): AsyncGenerator<string> {
    const hash = createHash('sha256')
    let pending = ''
    // Whether each line not yet given out up to its newline is a row.
    const unfinished: boolean[] = []
    const giveOut = (chunk: string) => {
      for (const character of chunk) if (character === '\n' && unfinished.shift()!) counter.produced++
      return chunk
    }
    for (const line of lines()) {
      hash.update(line.text + '\n')
      pending += line.text + '\n'
      unfinished.push(line.isRow)
      for (; pending.length >= chunkSize; pending = pending.slice(chunkSize)) yield giveOut(pending.slice(0, chunkSize))
    }
    unfinished.push(false)
    yield giveOut(pending + JSON.stringify({ end: true, sha256: hash.digest('hex') }) + '\n')
  }
  return { stream: () => Readable.from(chunks(), { objectMode: false }), counter }
}

/**
 * A named pipe at `pipe` that gives each reader in turn what one of `feeds` writes (a reader
 * that opens it waits for a writer, and sees the end when that writer closes). Resolves once
 * every feed has been read to its end.
 */
async function servePipe (pipe: string, feeds: Array<(writer: ReturnType<typeof createWriteStream>) => Promise<void>>): Promise<void> {
  execFileSync('mkfifo', [pipe])
  const readersOpen = () => readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === pipe
    } catch {
      return false
    }
  }).length
  for (const feed of feeds) {
    // A writer that opens while the previous read is still open would run on into it.
    await until('the previous read to close the pipe', async () => readersOpen() === 0 || undefined)
    const writer = createWriteStream(pipe)
    await feed(writer)
    await finished(writer)
  }
}

describe('readExport: the import reads its file as a stream', () => {
  it('hands rows on in batches while the file is still being read: it never reads far ahead of what it has handed on', async () => {
    const documents = 50_000
    const { stream, counter } = syntheticExport(documents, 4096)
    const batches: Array<{ table: string, first: number, size: number }> = []
    let handedOn = 0
    let mostAhead = 0
    const checked = await readExport(stream(), 'the synthetic export', async (batch) => {
      batches.push({ table: batch.table, first: batch.rows[0]![0] as number, size: batch.rows.length })
      handedOn += batch.rows.length
      mostAhead = Math.max(mostAhead, counter.produced - handedOn)
      // A consumer that takes its time (as an insert does): the reader must wait for it.
      await new Promise((resolve) => setImmediate(resolve))
    })
    expect(checked).toMatchObject({ lastCommit: 7, rows: { app_user: 0, document: documents, maintenance_state: 0, maintenance_log: 0, maintenance_window: 0, user_log: 0 } })
    expect(handedOn).toBe(documents)
    expect(counter.produced).toBe(documents)
    // Every row once, in order, in batches of at most 200.
    expect(batches.every((batch) => batch.table === 'document' && batch.size <= 200)).toBe(true)
    expect(batches.map((batch) => batch.first)).toEqual(Array.from({ length: documents / 200 }, (_, i) => 1 + i * 200))
    // Whatever the file's size, it is read at most a few thousand lines ahead (readline's queue
    // and a chunk or two), not to its end before the first batch.
    expect(mostAhead).toBeLessThan(3000)
  })

  it('a file found wanting half-way throws there, after the rows before it were handed on', async () => {
    const { stream } = syntheticExport(5000, 1000)
    const damaged = Readable.from((async function * () {
      let text = ''
      for await (const chunk of stream()) text += chunk as string
      const lines = text.split('\n')
      lines[3000] = lines[3000]!.slice(0, 20)
      yield lines.join('\n')
    })())
    let handedOn = 0
    await expect(readExport(damaged, 'the damaged export', async (batch) => { handedOn += batch.rows.length })).rejects.toThrow(new ImportError('line 3001 is not JSON: the file is damaged'))
    expect(handedOn).toBe(2800)
  })
})

describe.each(DATABASE_KINDS)('export on %s', (kind) => {
  let site: TestSite
  let other: FastifyInstance
  let empty: TestDatabase
  let emptyDatabase: Database
  let freshState: unknown

  beforeAll(async () => {
    site = await startTestSite(kind, { config: { instanceId: 'export-a' }, tasks: TIMINGS })
    await addContent(site)
    await switchTo(site.app, BOSS, 'normal')
    // More than one page (1,000 rows) of documents.
    expect(await seedDocuments(site.database.writer, catalogFor(kind), 1200)).toBe(1200)
    // A second instance on the same database commits while the first exports.
    const config = testConfig(site.testDatabase, { instanceId: 'export-b' })
    other = await buildApp({ config, database: await openDatabase(config.database), tasks: TIMINGS })
    await other.ready()
    empty = await createTestDatabase(kind)
    emptyDatabase = await openDatabase(empty.url)
    freshState = await stateRow(emptyDatabase)
  })
  afterAll(async () => {
    await other?.close()
    await site?.close()
    await emptyDatabase?.destroy()
    await empty?.drop()
  })

  async function expectStillEmpty (database: Database, state: unknown): Promise<void> {
    for (const table of ['app_user', 'document', 'maintenance_log', 'maintenance_window', 'user_log', 'commit_log', 'catalog']) expect(await countOf(database, table), table).toBe(0)
    expect(await stateRow(database)).toEqual(state)
  }

  it('writes the documented format: a header with the last commit, one section per table in id order, and an end line with the SHA-256 of every byte before it', async () => {
    const tables = await tableArrays(site.database)
    const lastCommit = await lastCommitIn(site.database)
    expect(lastCommit).toBeGreaterThan(0)
    const { summary, bytes } = await exportOf(site.database)
    const lines = linesOf(bytes)
    expect(JSON.parse(lines[0]!)).toEqual({ format: EXPORT_FORMAT, version: EXPORT_VERSION, lastCommit, tables: [...TABLES] })
    expect(EXPORT_FORMAT).toBe('quiesce-export')
    expect(EXPORT_VERSION).toBe(1)
    // The header line is exactly that, keys in that order.
    expect(lines[0]).toBe(`{"format":"quiesce-export","version":1,"lastCommit":${lastCommit},"tables":["app_user","document","maintenance_state","maintenance_log","maintenance_window","user_log"]}`)

    let at = 1
    for (const table of TABLES) {
      expect(JSON.parse(lines[at]!), table).toEqual({ table, columns: COLUMNS[table], rows: tables[table]!.length })
      const rows = lines.slice(at + 1, at + 1 + tables[table]!.length).map((line) => JSON.parse(line))
      expect(rows, table).toEqual(tables[table])
      at += 1 + tables[table]!.length
    }
    expect(tables.document).toHaveLength(1203)
    expect(tables.app_user!.map((row) => [row[1], row[7] !== null, row[8]])).toEqual([['boss', false, null], ['ann', false, null], ['gone', true, 'boss']])
    expect(tables.user_log!.map((row) => [row[2], row[3], row[4], row[5]])).toEqual([['boss', 'web', 'gone', 'disabled']])
    // exclusive, normal, the member's refused attempt, concurrent, normal.
    expect(tables.maintenance_log!.map((row) => [row[2], row[6], row[11]])).toEqual([
      ['boss', 'exclusive', 'applied'], ['boss', 'normal', 'applied'], ['ann', 'concurrent', 'refused'], ['boss', 'concurrent', 'applied'], ['boss', 'normal', 'applied'],
    ])
    // The tricky text survives as it was stored.
    const creme = tables.document!.find((row) => row[1] === 'creme-brulee')!
    expect(creme[3]).toBe(TRICKY[0]!.body)

    expect(at).toBe(lines.length - 1)
    const end = lines[at]!
    const before = bytes.subarray(0, bytes.length - Buffer.byteLength(end) - 1)
    expect(JSON.parse(end)).toEqual({ end: true, sha256: createHash('sha256').update(before).digest('hex') })
    expect(end).toBe(`{"end":true,"sha256":"${createHash('sha256').update(before).digest('hex')}"}`)

    expect(summary).toEqual({
      lastCommit,
      rows: { app_user: 3, document: 1203, maintenance_state: 1, maintenance_log: tables.maintenance_log!.length, maintenance_window: 1, user_log: 1 },
      bytes: bytes.length,
    })
  })

  it('is one consistent snapshot: writes committed while it runs (on another instance) are not in it', async () => {
    const before = await exportOf(site.database)
    const lastCommit = await lastCommitIn(site.database)
    const users = await countOf(site.database, 'app_user')
    // Hold the export after the 500th document row: the first page of documents has been read,
    // the second page (from id 1001) not yet.
    const blockAfter = 1 + 1 + users + 1 + 500
    const blocked = deferred()
    const release = deferred()
    const chunks: Buffer[] = []
    let lines = 0
    const slow = new Writable({
      highWaterMark: 1,
      write (chunk: Buffer, _encoding, callback) {
        chunks.push(Buffer.from(chunk))
        lines += chunk.toString().split('\n').length - 1
        if (lines === blockAfter) {
          blocked.resolve()
          release.promise.then(() => callback(), callback)
        } else {
          callback()
        }
      },
    })
    const exporting = writeExport(site.database, slow)
    await blocked.promise

    // Meanwhile, on the other instance: edits before and after the export's position, a new
    // document, a deletion, a new user and two mode changes.
    const slugs = await site.database.writer.selectFrom('document').select(['id', 'slug']).where('id', 'in', [5, 1100, 1150]).orderBy('id').execute()
    for (const { slug } of slugs.slice(0, 2)) {
      const response = await other.inject({ method: 'PUT', url: `/api/docs/${slug}`, headers: { authorization: ANN }, payload: { title: 'Changed during the export', body: 'new text' } })
      expect(response.statusCode, response.body).toBe(200)
    }
    expect((await other.inject({ method: 'PUT', url: '/api/docs/born-during-export', headers: { authorization: ANN }, payload: { title: 'New', body: 'new' } })).statusCode).toBe(201)
    expect((await other.inject({ method: 'DELETE', url: `/api/docs/${slugs[2]!.slug}`, headers: { authorization: ANN } })).statusCode).toBe(204)
    await addUser(site.database, 'late-user', 'member')
    await switchTo(other, BOSS, 'concurrent', { reason: 'during the export' })
    await switchTo(other, BOSS, 'normal')
    expect(await lastCommitIn(site.database)).toBe(lastCommit + 4)

    release.resolve()
    const summary = await exporting
    const during = Buffer.concat(chunks)
    // Exactly the state at its start, byte for byte.
    expect(summary.lastCommit).toBe(lastCommit)
    expect(during.equals(before.bytes)).toBe(true)
    const text = during.toString()
    expect(text).not.toContain('Changed during the export')
    expect(text).not.toContain('born-during-export')
    expect(text).not.toContain('late-user')
    expect(text).toContain(`"${slugs[2]!.slug}"`)

    const after = await exportOf(site.database)
    expect(after.summary.lastCommit).toBe(lastCommit + 4)
    expect(after.summary.rows).toEqual({ ...before.summary.rows, app_user: before.summary.rows.app_user! + 1, maintenance_log: before.summary.rows.maintenance_log! + 2 })
    expect(after.bytes.toString()).toContain('born-during-export')
  })

  it('an export in progress does not hold up its own instance: its requests read and write meanwhile', async () => {
    const blocked = deferred()
    const release = deferred()
    let lines = 0
    const slow = new Writable({
      highWaterMark: 1,
      write (chunk: Buffer, _encoding, callback) {
        lines += chunk.toString().split('\n').length - 1
        if (lines === 10) {
          blocked.resolve()
          release.promise.then(() => callback(), callback)
        } else {
          callback()
        }
      },
    })
    const exporting = writeExport(site.database, slow)
    await blocked.promise
    const within = <T>(promise: Promise<T>) => Promise.race([promise, new Promise<string>((resolve) => setTimeout(() => resolve('no answer within 3 s'), 3000))])
    const read = await within(site.app.inject({ url: '/api/docs?limit=1' }).then((response) => response.statusCode))
    expect(read).toBe(200)
    const search = await within(site.app.inject({ url: '/api/search?q=brass' }).then((response) => response.statusCode))
    expect(search).toBe(200)
    const write = await within(site.app.inject({ method: 'PUT', url: '/api/docs/written-while-exporting', headers: { authorization: ANN }, payload: { title: 'Meanwhile', body: 'saved' } }).then((response) => response.statusCode))
    expect(write).toBe(201)
    release.resolve()
    const summary = await exporting
    expect(summary.rows.document).toBe(await countOf(site.database, 'document') - 1)
  })

  it('quiesce export FILE writes the same bytes, readable by its owner only; - writes to stdout; no FILE is a usage error', async () => {
    const file = path.join(site.testDatabase.dataDir, 'cli-export.jsonl')
    const reference = await exportOf(site.database)
    const run = await quiesce(site.testDatabase, ['export', file])
    const rows = reference.summary.rows
    expect(run).toEqual({
      code: 0,
      stdout: '',
      stderr: `exported ${rows.app_user} app_user, ${rows.document} document, 1 maintenance_state, ${rows.maintenance_log} maintenance_log, 1 maintenance_window, 1 user_log up to commit ${reference.summary.lastCommit} (${reference.bytes.length} bytes)\n`,
    })
    expect(readFileSync(file).equals(reference.bytes)).toBe(true)
    expect(statSync(file).mode & 0o777).toBe(0o600)

    const toStdout = await quiesce(site.testDatabase, ['export', '-'])
    expect(toStdout.code).toBe(0)
    expect(toStdout.stdout).toBe(reference.bytes.toString())

    const usage = await quiesce(site.testDatabase, ['export'])
    expect(usage.code).toBe(2)
    expect(usage.stderr).toMatch(/^quiesce: expected export FILE\n/)
  })

  it('an import into a database that is not empty is refused with a clear message and writes nothing', async () => {
    const file = path.join(site.testDatabase.dataDir, 'into-itself.jsonl')
    writeFileSync(file, (await exportOf(site.database)).bytes)
    const before = await exportOf(site.database)
    const catalogBefore = await catalogRows(site.database)
    const message = 'the database is not empty (it has rows in app_user); import only into a new, empty database'
    await expect(importExport(site.database, catalogFor(kind), file)).rejects.toThrow(new ImportError(message))
    const run = await quiesce(site.testDatabase, ['import', file])
    expect(run).toEqual({ code: 1, stdout: '', stderr: `quiesce: ${message}\n` })
    expect((await exportOf(site.database)).bytes.equals(before.bytes)).toBe(true)
    expect(await catalogRows(site.database)).toEqual(catalogBefore)

    // Documents alone make a database not empty too.
    const documentsOnly = await createTestDatabase(kind)
    const database = await openDatabase(documentsOnly.url)
    try {
      await seedDocuments(database.writer, catalogFor(kind), 1)
      await expect(importExport(database, catalogFor(kind), file)).rejects.toThrow('the database is not empty (it has rows in document); import only into a new, empty database')
      expect(await countOf(database, 'app_user')).toBe(0)
      expect(await countOf(database, 'document')).toBe(1)
    } finally {
      await database.destroy()
      await documentsOnly.drop()
    }
  })

  it('an import loads the file as it reads it: its first documents are written before the rest of the file has been sent', async () => {
    const exported = (await exportOf(site.database)).bytes
    const target = await createTestDatabase(kind)
    const database = await openDatabase(target.url)
    const firstDocuments = deferred()
    const catalog = catalogFor(kind)
    const watched = { ...catalog, insertMany: async (db: Parameters<typeof catalog.insertMany>[0], entries: Parameters<typeof catalog.insertMany>[1]) => { firstDocuments.resolve(); await catalog.insertMany(db, entries) } }
    const pipe = path.join(target.dataDir, 'streamed.jsonl')
    const cut = Math.floor(exported.length / 3)
    const feeding = servePipe(pipe, [
      // The check reads it all...
      async (writer) => { writer.end(exported) },
      // ...the load gets a third, and the rest only once documents have been written.
      async (writer) => {
        writer.write(exported.subarray(0, cut))
        const written = await Promise.race([firstDocuments.promise.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5000))])
        writer.end(exported.subarray(cut))
        expect(written, 'documents written before the last two thirds of the file were sent').toBe(true)
      },
    ])
    try {
      const summary = await importExport(database, watched, pipe)
      await feeding
      expect(summary.rows.document).toBe(await countOf(site.database, 'document'))
      expect((await exportOf(database)).bytes.equals(exported)).toBe(true)
      expect(await catalogRows(database)).toHaveLength(summary.rows.document!)
    } finally {
      await database.destroy()
      await target.drop()
    }
  })

  describe('a damaged or foreign file is refused before anything is written', () => {
    let good: Buffer
    const fileFor = (name: string, bytes: Buffer | string) => {
      const file = path.join(empty.dataDir, name)
      writeFileSync(file, bytes)
      return file
    }

    beforeAll(async () => {
      good = (await exportOf(site.database)).bytes
    })

    async function expectRefused (name: string, bytes: Buffer | string, message: string): Promise<void> {
      const file = fileFor(name, bytes)
      await expect(importExport(emptyDatabase, catalogFor(kind), file)).rejects.toThrow(ImportError)
      await expect(importExport(emptyDatabase, catalogFor(kind), file)).rejects.toThrow(message)
      await expectStillEmpty(emptyDatabase, freshState)
      const run = await quiesce(empty, ['import', file])
      expect(run.code).toBe(1)
      expect(run.stdout).toBe('')
      expect(run.stderr).toBe(`quiesce: ${message}\n`)
      await expectStillEmpty(emptyDatabase, freshState)
    }

    it('truncated at a line boundary, or in the middle of a line', async () => {
      const lines = linesOf(good)
      const withoutEnd = lines.slice(0, -1).join('\n') + '\n'
      await expectRefused('no-end.jsonl', withoutEnd, 'the file ends before its end line: it is truncated')
      const half = lines.slice(0, 700).join('\n') + '\n'
      await expectRefused('half.jsonl', half, 'the file ends before its end line: it is truncated')
      const midLine = good.subarray(0, good.indexOf('Catalog entry 600.') + 5)
      const midLineNumber = midLine.toString().split('\n').length
      await expectRefused('mid-line.jsonl', midLine, `line ${midLineNumber} is not JSON: the file is damaged`)
      await expectRefused('empty.jsonl', '', 'the file is empty')
    })

    it('with one byte changed, or a wrong checksum', async () => {
      const changed = Buffer.from(good)
      const at = changed.indexOf('Catalog entry 600.')
      expect(at).toBeGreaterThan(0)
      changed[at + 'Catalog entry 6'.length] = '7'.charCodeAt(0)
      await expectRefused('one-byte.jsonl', changed, 'the checksum does not match: the file was altered or damaged')

      const lines = linesOf(good)
      const wrongSum = [...lines.slice(0, -1), JSON.stringify({ end: true, sha256: createHash('sha256').update('something else').digest('hex') })].join('\n') + '\n'
      await expectRefused('wrong-sum.jsonl', wrongSum, 'the checksum does not match: the file was altered or damaged')

      // A row dropped and the checksum made to match: the row count says so.
      const body = [...lines.slice(0, 10), ...lines.slice(11, -1)].join('\n') + '\n'
      const forged = body + JSON.stringify({ end: true, sha256: createHash('sha256').update(body).digest('hex') }) + '\n'
      const documents = JSON.parse(lines.find((line) => line.startsWith('{"table":"document"'))!).rows
      await expectRefused('forged.jsonl', forged, `table document: expected ${documents} rows, found ${documents - 1} (the file is truncated or altered)`)
      // A row that is not a row of its table.
      const odd = [...lines.slice(0, 10), '[1,"two"]', ...lines.slice(11, -1)].join('\n') + '\n'
      await expectRefused('odd-row.jsonl', odd + JSON.stringify({ end: true, sha256: createHash('sha256').update(odd).digest('hex') }) + '\n', 'line 11: a row of document must be an array of 9 values')
      // Something after the end line.
      await expectRefused('trailing.jsonl', Buffer.concat([good, Buffer.from('{"more":true}\n')]), `line ${lines.length + 1}: there is more after the end line`)
    })

    it('that changes between the check and the load (a pipe that gives another valid export the second time it is read): nothing is written', async () => {
      const lines = linesOf(good)
      const body = lines.slice(0, -1).join('\n').replace('Catalog entry 600.', 'Catalog entry 601.') + '\n'
      const other = Buffer.from(body + JSON.stringify({ end: true, sha256: createHash('sha256').update(body).digest('hex') }) + '\n')
      const pipe = path.join(empty.dataDir, `changing-${kind}.jsonl`)
      const feeding = servePipe(pipe, [async (writer) => { writer.end(good) }, async (writer) => { writer.end(other) }])
      try {
        await expect(importExport(emptyDatabase, catalogFor(kind), pipe)).rejects.toThrow(new ImportError(`${pipe} changed while it was imported; nothing was imported`))
        await feeding
        await expectStillEmpty(emptyDatabase, freshState)
      } finally {
        rmSync(pipe, { force: true })
      }
    })

    it('quiesce import of a pipe, refused before it is read: an import reads its file twice', async () => {
      const pipe = path.join(empty.dataDir, `pipe-${kind}.jsonl`)
      execFileSync('mkfifo', [pipe])
      try {
        const run = await quiesce(empty, ['import', pipe])
        expect(run).toEqual({ code: 1, stdout: '', stderr: `quiesce: ${pipe} is not a regular file: an import reads its file twice (to check it, then to load it), so save the export to a file first\n` })
        await expectStillEmpty(emptyDatabase, freshState)
      } finally {
        rmSync(pipe, { force: true })
      }
    })

    it('whose data the database refuses half-way (a duplicate user name): the import is one transaction, nothing stays', async () => {
      const lines = linesOf(good)
      // The second user row, its name made the first one's; the checksum made to match.
      const users = lines.slice(2, 4).map((line) => JSON.parse(line))
      users[1][1] = users[0][1]
      const body = [...lines.slice(0, 2), ...users.map((row) => JSON.stringify(row)), ...lines.slice(4, -1)].join('\n') + '\n'
      const file = fileFor('duplicate-user.jsonl', body + JSON.stringify({ end: true, sha256: createHash('sha256').update(body).digest('hex') }) + '\n')
      await expect(importExport(emptyDatabase, catalogFor(kind), file)).rejects.toThrow(/unique|duplicate/i)
      await expectStillEmpty(emptyDatabase, freshState)
      const run = await quiesce(empty, ['import', file])
      expect(run.code).toBe(1)
      expect(run.stderr).toMatch(/^quiesce: .*(unique|duplicate).*\n$/i)
      await expectStillEmpty(emptyDatabase, freshState)
    })

    it('with a wrong format or version in the header', async () => {
      const lines = linesOf(good)
      const header = JSON.parse(lines[0]!)
      const withHeader = (value: unknown) => [JSON.stringify(value), ...lines.slice(1)].join('\n') + '\n'
      await expectRefused('format.jsonl', withHeader({ ...header, format: 'other-export' }), 'this is not a Quiesce export (no "quiesce-export" header)')
      await expectRefused('version.jsonl', withHeader({ ...header, version: 2 }), 'export format version 2 is not supported (this Quiesce reads version 1)')
      await expectRefused('tables.jsonl', withHeader({ ...header, tables: ['app_user', 'document'] }), 'the header must list the tables app_user, document, maintenance_state, maintenance_log, maintenance_window, user_log')
      await expectRefused('csv.jsonl', 'id,slug,title\n1,a,b\n', 'line 1 is not JSON: the file is damaged')
      const missing = path.join(empty.dataDir, 'does-not-exist.jsonl')
      await expect(importExport(emptyDatabase, catalogFor(kind), missing)).rejects.toThrow(`cannot read ${missing}: ENOENT`)
      await expectStillEmpty(emptyDatabase, freshState)
    })
  })

  it('the export task: started from the control panel, offered for download when done, the same bytes as a fresh export; managers only', async () => {
    await addUser(site.database, 'mel', 'member')
    const boss = await signedInBrowser(site.app, 'maintainer')
    const tasksPage = await site.app.inject({ url: '/manage/tasks', headers: { cookie: boss.cookie } })
    const csrf = csrfTokenIn(tasksPage.body)
    const started = await site.app.inject({
      method: 'POST',
      url: '/manage/tasks/export',
      headers: { cookie: boss.cookie, 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ _csrf: csrf }).toString(),
    })
    expect(started.statusCode).toBe(303)
    const location = started.headers.location as string
    expect(location).toMatch(/^\/manage\/tasks\/\d+$/)
    const id = Number(location.split('/').at(-1))

    const task = await until('the export to finish', async () => {
      const json = (await site.app.inject({ url: `/api/tasks/${id}`, headers: { authorization: BOSS } })).json()
      return FINISHED.includes(json.state) ? json : undefined
    })
    const reference = await exportOf(site.database)
    const total = Object.values(reference.summary.rows).reduce((sum, n) => sum + n, 0)
    expect(task).toMatchObject({ id, kind: 'export', state: 'done', done: total, total, error: null, startedBy: 'boss' })

    const page = await site.app.inject({ url: location, headers: { cookie: boss.cookie } })
    expect(page.statusCode).toBe(200)
    const pageMain = mainOf(page.body)
    const link = new RegExp(`<a class="button" href="/manage/tasks/${id}/download">Download (quiesce-export-[0-9TZ-]+-task-${id}\\.jsonl)</a> <span class="meta">JSON Lines, [0-9.]+ (?:KB|MB) \\(([0-9,]+) bytes\\), up to commit (\\d+)</span>`).exec(pageMain)
    expect(link, pageMain).not.toBeNull()
    const [, name, bytes, commit] = link!
    expect(Number(commit)).toBe(reference.summary.lastCommit)
    expect(Number(bytes!.replaceAll(',', ''))).toBe(reference.bytes.length)
    expect(pageMain).toContain('<h1>Export #' + id + '</h1>')
    // The list says what the export produced, and offers it too.
    const listMain = mainOf((await site.app.inject({ url: '/manage/tasks', headers: { cookie: boss.cookie } })).body)
    expect(listMain).toMatch(new RegExp(`<td data-label="Result"><a href="/manage/tasks/${id}/download">Download</a> <span class="meta nowrap">\\(JSON Lines, [0-9.]+ (KB|MB)\\)</span></td>`))

    const download = await site.app.inject({ url: `/manage/tasks/${id}/download`, headers: { cookie: boss.cookie } })
    expect(download.statusCode).toBe(200)
    expect(download.headers['content-disposition']).toBe(`attachment; filename="${name}"`)
    expect(download.headers['content-type']).toBe('application/x-ndjson')
    expect(download.rawPayload.equals(reference.bytes)).toBe(true)
    // The file on the server holds password hashes: readable by its owner only.
    expect(statSync(path.join(site.testDatabase.dataDir, 'exports', name!)).mode & 0o777).toBe(0o600)

    // Managers only; nothing to download from a task that is not a finished export.
    const mel = await signIn(site.app, 'mel', 'mel-password')
    expect((await site.app.inject({ url: `/manage/tasks/${id}/download` })).statusCode).toBe(401)
    expect((await site.app.inject({ url: `/manage/tasks/${id}/download`, headers: { cookie: mel.cookie } })).statusCode).toBe(403)
    const memberStart = await site.app.inject({
      method: 'POST',
      url: '/manage/tasks/export',
      headers: { cookie: mel.cookie, 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ _csrf: mel.csrf }).toString(),
    })
    expect(memberStart.statusCode).toBe(403)
    expect((await site.app.inject({ method: 'POST', url: '/api/tasks/export', headers: { authorization: ANN } })).statusCode).toBe(403)
    expect((await site.app.inject({ url: '/manage/tasks/99999/download', headers: { cookie: boss.cookie } })).statusCode).toBe(404)
    const reindex = await site.app.inject({ method: 'POST', url: '/api/tasks/reindex', headers: { authorization: BOSS } })
    expect(reindex.statusCode).toBe(202)
    expect((await site.app.inject({ url: `/manage/tasks/${reindex.json().id}/download`, headers: { cookie: boss.cookie } })).statusCode).toBe(404)
    await until('the reindex to finish', async () => FINISHED.includes((await site.app.inject({ url: `/api/tasks/${reindex.json().id}`, headers: { authorization: BOSS } })).json().state))
    expect(await readState(site.app)).toMatchObject({ mode: 'normal' })
  })
})

/** Round trip through the other kind of database and back: the same bytes each time. */
describe.each(DATABASE_KINDS)('round trip from %s through the other database and back', (kind: DatabaseKind) => {
  const otherKind: DatabaseKind = kind === 'sqlite' ? 'postgres' : 'sqlite'
  let origin: TestSite
  const databases: TestDatabase[] = []
  const running: FastifyInstance[] = []

  beforeAll(async () => {
    origin = await startTestSite(kind, { config: { instanceId: 'origin' }, tasks: TIMINGS })
    await addContent(origin)
    expect(await seedDocuments(origin.database.writer, catalogFor(kind), 150)).toBe(150)
    // A deleted document leaves a gap in the ids (the site is in concurrent mode: its maintainer deletes it).
    expect((await origin.app.inject({ method: 'DELETE', url: '/api/docs/markdown-table', headers: { authorization: BOSS } })).statusCode).toBe(204)
  })
  afterAll(async () => {
    for (const app of running) await app.close()
    for (const database of databases) await database.drop()
    await origin?.close()
  })

  async function newDatabase (which: DatabaseKind): Promise<TestDatabase> {
    const database = await createTestDatabase(which)
    databases.push(database)
    return database
  }

  it(`${kind} → ${otherKind} → ${kind}: byte-for-byte equal exports; then search, sign-in and new ids work`, async () => {
    // The site is in concurrent mode (boss): the state and its maintainer travel with the data.
    const exported = path.join(origin.testDatabase.dataDir, 'origin.jsonl')
    expect((await quiesce(origin.testDatabase, ['export', exported])).code).toBe(0)
    const original = readFileSync(exported)
    const header = JSON.parse(linesOf(original)[0]!)
    expect(header.lastCommit).toBe(await lastCommitIn(origin.database))

    // Into the other kind, with the command line.
    const mirror = await newDatabase(otherKind)
    const imported = await quiesce(mirror, ['import', exported])
    const documents = await countOf(origin.database, 'document')
    expect(imported).toEqual({
      code: 0,
      stdout: `imported 3 app_user, ${documents} document, 1 maintenance_state, ${await countOf(origin.database, 'maintenance_log')} maintenance_log, ${await countOf(origin.database, 'maintenance_window')} maintenance_window, 1 user_log (export up to commit ${header.lastCommit}); the catalog was rebuilt\n`,
      stderr: '',
    })
    const mirrorDatabase = await openDatabase(mirror.url)
    const second = await exportOf(mirrorDatabase)
    await mirrorDatabase.destroy()
    expect(second.bytes.toString()).toBe(original.toString())
    expect(second.bytes.equals(original)).toBe(true)

    // And back into a new database of the first kind, with the library.
    const back = await newDatabase(kind)
    const secondFile = path.join(back.dataDir, 'mirror.jsonl')
    writeFileSync(secondFile, second.bytes)
    const backDatabase = await openDatabase(back.url)
    const summary = await importExport(backDatabase, catalogFor(kind), secondFile)
    expect(summary.lastCommit).toBe(header.lastCommit)
    const third = await exportOf(backDatabase)
    await backDatabase.destroy()
    expect(third.bytes.equals(original)).toBe(true)

    // The imported site works: on the other kind of database, as a running app.
    const config = testConfig(mirror, { instanceId: 'mirror' })
    const app = await buildApp({ config, database: await openDatabase(config.database), tasks: TIMINGS })
    running.push(app)
    await app.ready()

    expect(await readState(app, BOSS)).toMatchObject({ mode: 'concurrent', maintainer: 'boss', reason: 'export test: «state» travels', until: '2031-05-06T07:08:09.000Z' })
    // The catalog was rebuilt: one entry per document, and search finds them.
    const catalog = await catalogRows(app.db)
    expect(catalog).toHaveLength(documents)
    const hits = (await app.inject({ url: `/api/search?q=${encodeURIComponent('crème brûlée')}` })).json().hits
    expect(hits.map((hit: { slug: string }) => hit.slug)).toEqual(['creme-brulee'])
    const seeded = (await app.inject({ url: '/api/search?q=catalog entry 149' })).json().hits
    expect(seeded.map((hit: { slug: string }) => hit.slug)).toContain((await app.db.writer.selectFrom('document').select('slug').where('slug', 'like', '%-149').executeTakeFirstOrThrow()).slug)
    expect((await app.inject({ url: '/api/search?q=pipes' })).json().hits).toEqual([])

    // Users sign in with their passwords.
    const boss = await signedInBrowser(app, 'maintainer')
    expect((await app.inject({ url: '/manage', headers: { cookie: boss.cookie } })).statusCode).toBe(200)
    await signedInBrowser(app, 'member')
    expect((await app.inject({ url: '/api/docs/creme-brulee', headers: { authorization: ANN } })).json()).toMatchObject({ title: TRICKY[0]!.title, body: TRICKY[0]!.body, version: 1 })

    // New rows get fresh ids after the imported ones (PostgreSQL sequences follow them).
    const maxLog = Number((await app.db.writer.selectFrom('maintenance_log').select((eb) => eb.fn.max('id').as('id')).executeTakeFirstOrThrow()).id)
    await switchTo(app, BOSS, 'normal')
    const logIds = await app.db.writer.selectFrom('maintenance_log').select('id').orderBy('id').execute()
    expect(logIds.at(-1)!.id).toBe(maxLog + 1)
    const maxId = Number((await app.db.writer.selectFrom('document').select((eb) => eb.fn.max('id').as('id')).executeTakeFirstOrThrow()).id)
    const created = await app.inject({ method: 'PUT', url: '/api/docs/after-the-move', headers: { authorization: ANN }, payload: { title: 'After the move', body: 'written on the new database' } })
    expect(created.statusCode, created.body).toBe(201)
    const row = await app.db.writer.selectFrom('document').select('id').where('slug', '=', 'after-the-move').executeTakeFirstOrThrow()
    expect(row.id).toBe(maxId + 1)
    expect(await lastCommitIn(app.db)).toBe(header.lastCommit + 1)
    await addUser(app.db, 'newcomer', 'member')
    const users = await app.db.writer.selectFrom('app_user').select(['id', 'username']).orderBy('id').execute()
    expect(users.map((user) => user.username)).toEqual(['boss', 'ann', 'gone', 'newcomer'])
    expect(users[3]!.id).toBe(users[2]!.id + 1)
    // The disabled user is still disabled on the new database.
    expect((await app.inject({ url: '/api/docs?limit=1', headers: { authorization: basicAuth('gone', 'gone-password') } })).statusCode).toBe(401)
    expect((await app.inject({ url: '/api/docs?limit=1', headers: { authorization: ANN } })).statusCode).toBe(200)
    expect((await app.inject({ url: '/api/search?q=after the move' })).json().hits.map((hit: { slug: string }) => hit.slug)).toEqual(['after-the-move'])
  })
})
