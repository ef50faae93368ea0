import type { Kysely, Selectable } from 'kysely'
import type { DB, DocumentTable } from '../db/schema.js'
import { assertVersionMatched, type UnitOfWork } from '../unit-of-work/unit-of-work.js'
import { NotFoundError } from '../errors.js'
import type { Catalog } from './catalog.js'
import { slugProblem, type DocumentInput } from './validation.js'

export interface Document {
  id: number
  slug: string
  title: string
  body: string
  version: number
  createdBy: string
  createdAt: string
  updatedBy: string
  updatedAt: string
}

export type DocumentSummary = Pick<Document, 'slug' | 'title' | 'version' | 'updatedAt' | 'updatedBy'>

function toDocument (row: Selectable<DocumentTable>): Document {
  return {
    id: row.id,
    slug: row.slug,
    title: row.title,
    body: row.body,
    version: row.version,
    createdBy: row.created_by,
    createdAt: row.created_at,
    updatedBy: row.updated_by,
    updatedAt: row.updated_at,
  }
}

export async function findDocument (db: Kysely<DB>, slug: string): Promise<Document | undefined> {
  const row = await db.selectFrom('document').selectAll().where('slug', '=', slug).executeTakeFirst()
  return row && toDocument(row)
}

/** The document at `slug`, or `404 QUIESCE_NOT_FOUND`. */
export async function requireDocument (db: Kysely<DB>, slug: string): Promise<Document> {
  const doc = slugProblem(slug) === undefined ? await findDocument(db, slug) : undefined
  if (doc === undefined) throw new NotFoundError(`There is no document "${slug}"`)
  return doc
}

/**
 * A page of the documents, most recently changed first. The page's ids come from the index of
 * that order alone (document_recent), so a page deep into the list does not read every row before it.
 */
export async function listDocuments (db: Kysely<DB>, options: { limit: number, offset: number }): Promise<DocumentSummary[]> {
  const rows = await db.selectFrom('document')
    .select(['slug', 'title', 'version', 'updated_at', 'updated_by'])
    .where('id', 'in', (eb) => eb.selectFrom('document').select('id')
      .orderBy('updated_at', 'desc').orderBy('slug')
      .limit(options.limit).offset(options.offset))
    .orderBy('updated_at', 'desc').orderBy('slug')
    .execute()
  return rows.map((row) => ({ slug: row.slug, title: row.title, version: row.version, updatedAt: row.updated_at, updatedBy: row.updated_by }))
}

/** How many documents there are (kept by the database: no count of the rows), or with `afterId`, whose id is greater. */
export async function countDocuments (db: Kysely<DB>, afterId = 0): Promise<number> {
  if (afterId > 0) {
    const row = await db.selectFrom('document').select((eb) => eb.fn.countAll<string | number>().as('n')).where('id', '>', afterId).executeTakeFirstOrThrow()
    return Number(row.n)
  }
  const row = await db.selectFrom('document_count').select('n').executeTakeFirstOrThrow()
  return Number(row.n)
}

type IndexedDocument = Pick<Document, 'id' | 'slug' | 'title' | 'body' | 'version'>

/** Up to `limit` documents whose id is greater than `afterId`, in id order: a batch of a catalog rebuild. */
export async function documentsAfter (db: Kysely<DB>, afterId: number, limit: number): Promise<IndexedDocument[]> {
  return db.selectFrom('document')
    .select(['id', 'slug', 'title', 'body', 'version'])
    .where('id', '>', afterId).orderBy('id').limit(limit).execute()
}

/**
 * The id and version of each document with `afterId` < id ≤ `upTo` (no upper bound when
 * undefined), in id order; `lockForShare` (PostgreSQL) holds those rows until the transaction ends.
 */
export async function documentVersions (db: Kysely<DB>, afterId: number, upTo: number | undefined, lockForShare: boolean): Promise<Array<Pick<Document, 'id' | 'version'>>> {
  let query = db.selectFrom('document').select(['id', 'version']).where('id', '>', afterId).orderBy('id')
  if (upTo !== undefined) query = query.where('id', '<=', upTo)
  if (lockForShare) query = query.forShare()
  return query.execute()
}

/**
 * New documents, in one statement in the caller's transaction, except those whose slug is taken:
 * for them nothing is written. Answers the id and slug of each document written.
 * (Generated content; people's edits go through {@link DocumentWriter}.)
 */
export async function insertDocumentsUnlessTaken (transaction: Kysely<DB>, docs: Array<Pick<Document, 'slug' | 'title' | 'body'>>, author: string, at: string): Promise<Array<Pick<Document, 'id' | 'slug'>>> {
  if (docs.length === 0) return []
  return transaction.insertInto('document').values(docs.map((doc) => ({
    slug: doc.slug,
    title: doc.title,
    body: doc.body,
    version: 1,
    created_by: author,
    created_at: at,
    updated_by: author,
    updated_at: at,
  }))).onConflict((oc) => oc.column('slug').doNothing()).returning(['id', 'slug']).execute()
}

/**
 * Document writes are staged in the unit of work and applied at its commit, each together
 * with its catalog entry. Each returns the document as it will be once committed.
 */
export class DocumentWriter {
  readonly #catalog: Catalog

  constructor (catalog: Catalog) {
    this.#catalog = catalog
  }

  create (unitOfWork: UnitOfWork, slug: string, input: DocumentInput, author: string): Document {
    const now = new Date().toISOString()
    const created: Document = {
      id: 0,
      slug,
      title: input.title,
      body: input.body,
      version: 1,
      createdBy: author,
      createdAt: now,
      updatedBy: author,
      updatedAt: now,
    }
    unitOfWork.stage(async (transaction) => {
      // A concurrent create of the same slug fails on the unique index: a conflict, retried.
      const { id } = await transaction.insertInto('document').values({
        slug,
        title: input.title,
        body: input.body,
        version: 1,
        created_by: author,
        created_at: now,
        updated_by: author,
        updated_at: now,
      }).returning('id').executeTakeFirstOrThrow()
      created.id = id
      await this.#catalog.index(transaction, { documentId: id, slug, title: input.title, body: input.body })
    })
    return created
  }

  /** Updates `document` as read; the commit fails with a conflict if its version moved meanwhile. */
  update (unitOfWork: UnitOfWork, document: Document, input: DocumentInput, editor: string): Document {
    const updated: Document = { ...document, ...input, version: document.version + 1, updatedBy: editor, updatedAt: new Date().toISOString() }
    unitOfWork.stage(async (transaction) => {
      const result = await transaction.updateTable('document')
        .set({ title: updated.title, body: updated.body, version: updated.version, updated_by: editor, updated_at: updated.updatedAt })
        .where('id', '=', document.id).where('version', '=', document.version)
        .executeTakeFirst()
      assertVersionMatched(result, `document ${document.slug}`)
      await this.#catalog.index(transaction, { documentId: document.id, slug: document.slug, title: updated.title, body: updated.body })
    })
    return updated
  }

  delete (unitOfWork: UnitOfWork, document: Document): void {
    unitOfWork.stage(async (transaction) => {
      const result = await transaction.deleteFrom('document')
        .where('id', '=', document.id).where('version', '=', document.version)
        .executeTakeFirst()
      assertVersionMatched(result, `document ${document.slug}`)
      await this.#catalog.remove(transaction, document.id)
    })
  }
}
