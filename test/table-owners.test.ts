import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'

const ROOT = path.join(import.meta.dirname, '..')

/**
 * Every table has one owner, the only file in app/ that reads or writes it; everything else
 * calls the owner's functions. The maintenance plugin's tables belong to its Kysely store.
 */
const OWNERS: Record<string, string | RegExp> = {
  app_user: 'app/auth/users.ts',
  user_log: 'app/auth/users.ts',
  password_reset: 'app/auth/users.ts',
  session: 'app/auth/session-store.ts',
  sign_in_failure: 'app/auth/sign-in-log.ts',
  document: 'app/content/documents.ts',
  document_count: 'app/content/documents.ts',
  catalog: 'app/content/catalog.ts',
  task: 'app/tasks/tasks.ts',
  commit_log: 'app/unit-of-work/commit-log.ts',
  maintenance_state: /^app\/maintenance\/kysely-[a-z-]+\.ts$/,
  maintenance_log: /^app\/maintenance\/kysely-[a-z-]+\.ts$/,
  maintenance_window: /^app\/maintenance\/kysely-[a-z-]+\.ts$/,
  maintenance_instance: /^app\/maintenance\/kysely-[a-z-]+\.ts$/,
}

/** Migrations create and fill tables before any owner exists. */
const MIGRATIONS = /^app\/db\/migrations\/|^app\/maintenance\/migration\.ts$/

/**
 * The export and its import copy every data table as rows, naming the tables from the format's
 * list (a dump and its restore): the one file that may reach tables by a name that is not written
 * out. A table it names in full still belongs to its owner (the commit log's last entry is read
 * through the unit of work).
 */
const COPIES_BY_NAME = 'app/tasks/export.ts'

/** Kysely's calls that name a table: reads (joins included) and writes. */
const TABLE_CALLS = new Set(['selectFrom', 'insertInto', 'replaceInto', 'updateTable', 'deleteFrom', 'mergeInto', 'innerJoin', 'leftJoin', 'rightJoin', 'fullJoin', 'crossJoin'])
/** A table named in raw SQL. */
const RAW_TABLE = /\b(?:from|into|update|join|table)\s+"?([a-z_]+)/gi

interface Access { file: string, table: string | undefined, how: string }

/** The table each Kysely call and each `sql` template in `text` names; undefined for a name that is not written out. */
function accessesIn (file: string, text: string): Access[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true)
  const found: Access[] = []
  const visit = (node: ts.Node) => {
    if (ts.isCallExpression(node) && ts.isPropertyAccessExpression(node.expression) && TABLE_CALLS.has(node.expression.name.text)) {
      const first = node.arguments[0]
      const how = node.expression.name.text
      if (first !== undefined && (ts.isStringLiteral(first) || ts.isNoSubstitutionTemplateLiteral(first))) {
        found.push({ file, table: first.text.split(/\s/)[0], how })
      } else if (first !== undefined && !ts.isArrowFunction(first)) {
        found.push({ file, table: undefined, how })
      }
    }
    if (ts.isTaggedTemplateExpression(node) && node.tag.getText(source) === 'sql') {
      const template = node.template
      const parts = ts.isNoSubstitutionTemplateLiteral(template) ? [template.text] : [template.head.text, ...template.templateSpans.map((span) => span.literal.text)]
      for (const part of parts) {
        for (const match of part.matchAll(RAW_TABLE)) found.push({ file, table: match[1]!.toLowerCase(), how: 'sql' })
      }
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
  return found
}

function sourceFiles (): string[] {
  return readdirSync(path.join(ROOT, 'app'), { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => path.relative(ROOT, path.join(entry.parentPath, entry.name)).split(path.sep).join('/'))
}

/**
 * The tables of the site's database: the members of `DB` in app/db/schema.ts and of
 * `MaintenanceTables`, and the catalog, which has no type (FTS5 on SQLite, tsvector on
 * PostgreSQL: reached through raw SQL only).
 */
function declaredTables (): string[] {
  const tables: string[] = ['catalog']
  for (const [file, name] of [['app/db/schema.ts', 'DB'], ['app/maintenance/store.ts', 'MaintenanceTables']] as const) {
    const source = ts.createSourceFile(file, readFileSync(path.join(ROOT, file), 'utf8'), ts.ScriptTarget.Latest, true)
    const declaration = source.statements.find((statement): statement is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(statement) && statement.name.text === name)
    if (declaration === undefined) throw new Error(`${file} declares no interface ${name}`)
    for (const member of declaration.members) if (member.name !== undefined) tables.push(member.name.getText(source))
  }
  return tables
}

function owns (owner: string | RegExp, file: string): boolean {
  return typeof owner === 'string' ? owner === file : owner.test(file)
}

const ACCESSES = sourceFiles().filter((file) => !MIGRATIONS.test(file))
  .flatMap((file) => accessesIn(file, readFileSync(path.join(ROOT, file), 'utf8')))

describe('every table has one owner', () => {
  it('the owner map names every table of the database, and no other', () => {
    expect(Object.keys(OWNERS).sort()).toEqual(declaredTables().sort())
  })

  it('no file but its owner reads or writes a table', () => {
    const trespassing = ACCESSES
      .filter((access) => access.table !== undefined && access.table in OWNERS && !owns(OWNERS[access.table]!, access.file))
      .map(({ file, table, how }) => `${file}: ${how} ${table}`)
    expect(trespassing).toEqual([])
  })

  it('tables are reached by a name written out, but where the export copies them', () => {
    const unnamed = ACCESSES.filter((access) => access.table === undefined)
    expect(unnamed.map(({ file, how }) => `${file}: ${how}(…)`).filter((line) => !line.startsWith(`${COPIES_BY_NAME}:`))).toEqual([])
    // The exception is still needed (else it goes).
    expect(unnamed.some((access) => access.file === COPIES_BY_NAME)).toBe(true)
  })

  it('every owner reaches its table (the map is not stale)', () => {
    for (const [table, owner] of Object.entries(OWNERS)) {
      expect(ACCESSES.some((access) => access.table === table && owns(owner, access.file)), table).toBe(true)
    }
  })

  it('the scan sees builder calls, joins, aliases and raw SQL', () => {
    const text = [
      "db.selectFrom('app_user as u').innerJoin('password_reset', 'a', 'b')",
      'await transaction.insertInto(`task`).values({})',
      'db.updateTable(table).set({})',
      'await sql`delete from catalog where rowid = $' + '{id}`.execute(db)',
      "db.selectFrom((eb) => eb.selectFrom('document').select('id').as('d'))",
    ].join('\n')
    expect(accessesIn('x.ts', text).map(({ table, how }) => `${how} ${table}`)).toEqual([
      'innerJoin password_reset', 'selectFrom app_user', 'insertInto task', 'updateTable undefined', 'sql catalog', 'selectFrom document',
    ])
  })
})
