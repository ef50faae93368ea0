import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import pg from 'pg'
import type { DatabaseUrl } from '../../app/config.js'

export type DatabaseKind = DatabaseUrl['kind']

/** Every integration suite runs against both. PostgreSQL must be up: its tests fail, never skip. */
export const DATABASE_KINDS: DatabaseKind[] = ['sqlite', 'postgres']

/** The server the PostgreSQL tests create their own databases on (trust auth on this machine). */
export const POSTGRES_ADMIN_URL = process.env.QUIESCE_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

export interface TestDatabase {
  url: DatabaseUrl
  /** A directory of this test's own, for the SQLite file, the access file and secrets. */
  dataDir: string
  drop (): Promise<void>
}

/** A fresh, empty database of the given kind, owned by one test file. */
export async function createTestDatabase (kind: DatabaseKind): Promise<TestDatabase> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'quiesce-test-'))
  if (kind === 'sqlite') {
    return {
      url: { kind, file: path.join(dataDir, 'quiesce.sqlite') },
      dataDir,
      async drop () { rmSync(dataDir, { recursive: true, force: true }) },
    }
  }
  const name = `quiesce_test_${randomBytes(6).toString('hex')}`
  await adminQuery(`create database ${name}`)
  const url = new URL(POSTGRES_ADMIN_URL)
  url.pathname = `/${name}`
  return {
    url: { kind, url: url.toString() },
    dataDir,
    async drop () {
      await adminQuery(`drop database if exists ${name} with (force)`)
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}

async function adminQuery (text: string): Promise<void> {
  const client = new pg.Client({ connectionString: POSTGRES_ADMIN_URL })
  await client.connect()
  try {
    await client.query(text)
  } finally {
    await client.end()
  }
}
