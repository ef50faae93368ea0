import type { Kysely, Transaction } from 'kysely'
import type { DB } from '../db/schema.js'
import type { Catalog } from './catalog.js'
import { countDocuments, insertDocumentsUnlessTaken } from './documents.js'
import { slugify } from './validation.js'

export const DEMO_DOCUMENTS = 200
const SEED_AUTHOR = 'quiesce'
const BATCH = 500

const MATERIALS = ['Brass', 'Steel', 'Oak', 'Walnut', 'Copper', 'Aluminium', 'Ceramic', 'Linen', 'Cork', 'Bamboo', 'Zinc', 'Glass']
const THINGS = ['hinge', 'drawer pull', 'shelf bracket', 'coat hook', 'door knob', 'cabinet latch', 'table leg', 'lamp base', 'picture rail', 'window stay', 'tap handle', 'curtain rod']
const QUALITIES = ['brushed', 'polished', 'oiled', 'lacquered', 'hand-forged', 'reclaimed', 'matte', 'antique', 'satin', 'raw']
const USES = ['kitchens', 'workshops', 'libraries', 'boats', 'gardens', 'studios', 'hallways', 'bathrooms', 'offices', 'cabins']
const FACTS = [
  'ships flat-packed with fixings',
  'is made to order in small batches',
  'takes a standard 4 mm screw',
  'comes with a ten-year guarantee',
  'is sold in pairs',
  'can be refinished at home',
  'fits most pre-war joinery',
  'is stocked in the north warehouse',
]

/** A small deterministic generator, so demo content and benchmarks are the same on every run. */
function mulberry32 (seed: number): () => number {
  let state = seed >>> 0
  return function next () {
    state = (state + 0x6D2B79F5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface GeneratedDocument { slug: string, title: string, body: string }

/** The `index`th generated catalog document (1-based); the same index always gives the same document. */
function generateDocument (index: number): GeneratedDocument {
  const random = mulberry32(index * 7919)
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!
  const material = pick(MATERIALS)
  const thing = pick(THINGS)
  const quality = pick(QUALITIES)
  const size = 20 + Math.floor(random() * 40) * 5
  const title = `${material} ${thing}, ${size} mm`
  const body = [
    `A ${quality} ${material.toLowerCase()} ${thing} for ${pick(USES)} and ${pick(USES)}. It ${pick(FACTS)} and ${pick(FACTS)}.`,
    '',
    '## Specification',
    '',
    `- **Material:** ${material.toLowerCase()}, ${quality}`,
    `- **Size:** ${size} mm`,
    `- **Weight:** ${(size * (0.8 + random() * 2)).toFixed(0)} g`,
    `- **Part number:** Q-${String(index).padStart(5, '0')}`,
    '',
    `Pairs well with the ${pick(MATERIALS).toLowerCase()} ${pick(THINGS)}. Catalog entry ${index}.`,
  ].join('\n')
  return { slug: `${slugify(`${material} ${thing} ${size}`)}-${index}`, title, body }
}

/**
 * Adds `count` generated documents (numbered after the ones already there) with their catalog
 * entries, in batches of one transaction each. Slugs that already exist are skipped.
 */
export async function seedDocuments (db: Kysely<DB>, catalog: Catalog, count: number): Promise<number> {
  const first = await countDocuments(db) + 1
  let added = 0
  for (let start = first; start < first + count; start += BATCH) {
    const end = Math.min(first + count, start + BATCH)
    added += await db.transaction().execute((transaction) => insertGenerated(transaction, catalog, start, end))
  }
  return added
}

/**
 * Inserts generated documents `start` ≤ index < `end` in the caller's transaction; returns how
 * many were new. Documents and their catalog entries go in as one statement each per batch of
 * {@link BATCH}: one statement per document made seeding 100,000 take a minute on PostgreSQL.
 */
export async function insertGenerated (transaction: Transaction<DB>, catalog: Catalog, start: number, end: number): Promise<number> {
  let added = 0
  for (let from = start; from < end; from += BATCH) {
    const docs = new Map<string, GeneratedDocument>()
    for (let index = from; index < Math.min(end, from + BATCH); index++) {
      const doc = generateDocument(index)
      docs.set(doc.slug, doc)
    }
    const inserted = await insertDocumentsUnlessTaken(transaction, [...docs.values()], SEED_AUTHOR, new Date().toISOString())
    await catalog.insertMany(transaction, inserted.map(({ id, slug }) => ({ documentId: id, ...docs.get(slug)! })))
    added += inserted.length
  }
  return added
}
