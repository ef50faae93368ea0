import { sql, type Kysely } from 'kysely'
import type { DatabaseKind } from '../db/database.js'
import { MAX_INTEGER, type DB } from '../db/schema.js'
import { markdownToText } from './markdown.js'

/**
 * The catalog: the full-text search index over documents. SQLite uses FTS5 (BM25 ranking),
 * PostgreSQL a tsvector column with a GIN index (ts_rank_cd). Entries are written in the same
 * unit of work as the document edits that change them.
 */
interface CatalogEntry {
  documentId: number
  slug: string
  title: string
  /** Markdown; the catalog indexes its text without the markup. */
  body: string
}

export interface SearchHit {
  slug: string
  title: string
  /** HTML-safe: the text is escaped and the matched words are wrapped in `<mark>`. */
  snippet: string
  /** Higher is better; comparable within one answer only. */
  score: number
}

export interface Catalog {
  index (db: Kysely<DB>, entry: CatalogEntry): Promise<void>
  /** Adds entries for documents that have none (a reindex batch, after {@link removeRange}). */
  insertMany (db: Kysely<DB>, entries: CatalogEntry[]): Promise<void>
  remove (db: Kysely<DB>, documentId: number): Promise<void>
  /** Removes the entries of documents `from` ≤ id ≤ `to` (`to` omitted: no upper bound). */
  removeRange (db: Kysely<DB>, from: number, to?: number): Promise<void>
  /** Empties the catalog (a reindex rebuilds it). */
  clear (db: Kysely<DB>): Promise<void>
  /**
   * The best `limit` hits after the first `offset`; among equals the oldest document first (by
   * id: SQLite then ranks from the index alone, where a tie on the slug made it read every match's
   * entry, three times as slow for a word in every document).
   */
  search (db: Kysely<DB>, query: string, limit: number, offset?: number): Promise<SearchHit[]>
  /** How many documents match the query in all. */
  count (db: Kysely<DB>, query: string): Promise<number>
}

const MARK_START = '\u0002'
const MARK_END = '\u0003'
const MAX_SEARCH_TERMS = 12

/** Words of the query (letters and digits), at most {@link MAX_SEARCH_TERMS}; all must match, the last as a prefix. */
export function searchTerms (query: string): string[] {
  return (query.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []).slice(0, MAX_SEARCH_TERMS)
}

export function catalogFor (kind: DatabaseKind): Catalog {
  return kind === 'sqlite' ? sqliteCatalog : postgresCatalog
}

function sqliteRow (entry: CatalogEntry) {
  return sql`(${entry.documentId}, ${entry.slug}, ${entry.title}, ${markdownToText(entry.body)})`
}

const sqliteCatalog: Catalog = {
  async index (db, entry) {
    await sql`delete from catalog where rowid = ${entry.documentId}`.execute(db)
    await sql`insert into catalog (rowid, slug, title, body) values ${sqliteRow(entry)}`.execute(db)
  },
  async insertMany (db, entries) {
    if (entries.length === 0) return
    await sql`insert into catalog (rowid, slug, title, body) values ${sql.join(entries.map(sqliteRow))}`.execute(db)
  },
  async remove (db, documentId) {
    await sql`delete from catalog where rowid = ${documentId}`.execute(db)
  },
  async removeRange (db, from, to) {
    // FTS5 takes time in proportion to the whole table for a rowid range (30 ms for 100 entries
    // of 100,000: a rebuild took quadratic time); its content table finds them by primary key.
    await sql`delete from catalog where rowid in (
      select id from catalog_content where id >= ${from} and id <= ${to ?? Number.MAX_SAFE_INTEGER})`.execute(db)
  },
  async clear (db) {
    await sql`delete from catalog`.execute(db)
  },
  async search (db, query, limit, offset = 0) {
    const match = sqliteMatch(query)
    if (match === undefined) return []
    const { rows } = await sql<{ slug: string, title: string, snippet: string, rank: number }>`
      select slug, title,
        snippet(catalog, 2, ${MARK_START}, ${MARK_END}, '…', 24) as snippet,
        bm25(catalog, 0.0, 10.0, 1.0) as rank
      from catalog where catalog match ${match}
      order by rank, rowid limit ${limit} offset ${offset}`.execute(db)
    return rows.map((row) => ({ slug: row.slug, title: row.title, snippet: markSnippet(row.snippet), score: -row.rank }))
  },
  async count (db, query) {
    const match = sqliteMatch(query)
    if (match === undefined) return 0
    const { rows } = await sql<{ count: number }>`select count(*) as count from catalog where catalog match ${match}`.execute(db)
    return Number(rows[0]!.count)
  },
}

function sqliteMatch (query: string): string | undefined {
  const terms = searchTerms(query)
  if (terms.length === 0) return undefined
  return terms.map((term, i) => `"${term}"${i === terms.length - 1 ? '*' : ''}`).join(' ')
}

function postgresRow (entry: CatalogEntry) {
  const text = withoutTagLookalikes(markdownToText(entry.body))
  return sql`(${entry.documentId}, ${entry.slug}, ${entry.title}, ${text},
    setweight(to_tsvector('english', ${withoutTagLookalikes(entry.title)}), 'A') || setweight(to_tsvector('english', ${text}), 'B'))`
}

const postgresCatalog: Catalog = {
  async index (db, entry) {
    await sql`
      insert into catalog (document_id, slug, title, body, search) values ${postgresRow(entry)}
      on conflict (document_id) do update set slug = excluded.slug, title = excluded.title,
        body = excluded.body, search = excluded.search`.execute(db)
  },
  async insertMany (db, entries) {
    if (entries.length === 0) return
    await sql`insert into catalog (document_id, slug, title, body, search) values ${sql.join(entries.map(postgresRow))}`.execute(db)
  },
  async remove (db, documentId) {
    await sql`delete from catalog where document_id = ${documentId}`.execute(db)
  },
  async removeRange (db, from, to) {
    await sql`delete from catalog where document_id >= ${from} and document_id <= ${to ?? MAX_INTEGER}`.execute(db)
  },
  async clear (db) {
    await sql`delete from catalog`.execute(db)
  },
  async search (db, query, limit, offset = 0) {
    const tsquery = postgresQuery(query)
    if (tsquery === undefined) return []
    const { rows } = await sql<{ slug: string, title: string, snippet: string, score: number }>`
      select slug, title,
        ts_headline('english', body, q, ${`StartSel=${MARK_START}, StopSel=${MARK_END}, MaxWords=30, MinWords=12, MaxFragments=1, FragmentDelimiter=" … "`}) as snippet,
        ts_rank_cd(search, q)::float8 as score
      from catalog, to_tsquery('english', ${tsquery}) as q
      where search @@ q
      order by score desc, document_id limit ${limit} offset ${offset}`.execute(db)
    return rows.map((row) => ({ slug: row.slug, title: row.title, snippet: markSnippet(row.snippet), score: row.score }))
  },
  async count (db, query) {
    const tsquery = postgresQuery(query)
    if (tsquery === undefined) return 0
    const { rows } = await sql<{ count: string }>`select count(*) as count from catalog where search @@ to_tsquery('english', ${tsquery})`.execute(db)
    return Number(rows[0]!.count)
  },
}

function postgresQuery (query: string): string | undefined {
  const terms = searchTerms(query)
  if (terms.length === 0) return undefined
  // Terms are letters and digits only, so they are safe inside to_tsquery syntax.
  return terms.map((term, i) => (i === terms.length - 1 ? `${term}:*` : term)).join(' & ')
}

/**
 * PostgreSQL's text search parser takes `<word …>` for an XML tag and drops it, so a document
 * about the `<details>` element could not be found by "details" (nor, in `a<b and c>d`, by
 * "and"). A space after the `<` keeps those words, in the index and in the snippet.
 */
function withoutTagLookalikes (text: string): string {
  return text.replace(/<(?=[A-Za-z_/!])/g, '< ')
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }

/** A snippet cut at a block's edge does not start or end with its separator. */
function markSnippet (raw: string): string {
  return raw.replace(/^(…?)\s*·\s*/, '$1').replace(/\s*·\s*(…?)$/, '$1')
    .replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!)
    .replaceAll(MARK_START, '<mark>')
    .replaceAll(MARK_END, '</mark>')
}
