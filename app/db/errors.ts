/** What a database error means to the unit of work, the same on SQLite and PostgreSQL. */
export type DatabaseErrorKind = 'unique-violation' | 'read-only' | 'serialization' | 'busy'

const POSTGRES_CODES: Record<string, DatabaseErrorKind> = {
  23505: 'unique-violation',
  25006: 'read-only',
  40001: 'serialization',
  '40P01': 'serialization',
}

export function classifyDatabaseError (err: unknown): DatabaseErrorKind | undefined {
  const code = (err as { code?: unknown } | null)?.code
  if (typeof code !== 'string') return undefined
  if (code in POSTGRES_CODES) return POSTGRES_CODES[code]
  if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY') return 'unique-violation'
  if (code.startsWith('SQLITE_READONLY')) return 'read-only'
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return 'busy'
  return undefined
}
