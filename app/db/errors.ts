/** What a database error means to the unit of work, the same on SQLite and PostgreSQL. */
type DatabaseErrorKind = 'unique-violation' | 'read-only' | 'serialization' | 'busy' | 'unavailable'

const POSTGRES_CODES: Record<string, DatabaseErrorKind> = {
  23505: 'unique-violation',
  25006: 'read-only',
  40001: 'serialization',
  '40P01': 'serialization',
  // The server cannot serve us now: the connection failed or was cut (08…), the server shuts
  // down, crashed or is starting (57P01–57P03), a timeout of ours ended the statement or an idle
  // transaction (57014, 25P03), it is out of disk, memory or connections (53…), or its storage fails (58030).
  '08000': 'unavailable',
  '08001': 'unavailable',
  '08003': 'unavailable',
  '08004': 'unavailable',
  '08006': 'unavailable',
  '57P01': 'unavailable',
  '57P02': 'unavailable',
  '57P03': 'unavailable',
  57014: 'unavailable',
  '25P03': 'unavailable',
  53000: 'unavailable',
  53100: 'unavailable',
  53200: 'unavailable',
  53300: 'unavailable',
  58030: 'unavailable',
}

/** Socket errors of a connection that could not be made or was lost. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN'])

/**
 * node-postgres and pg-pool report a lost or timed-out connection with these messages and no code.
 * Errors without a SQLSTATE are matched against them only, so a programming error stays a 500.
 */
const LOST_CONNECTION = /^(Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|Client was closed and is not queryable)/

export function classifyDatabaseError (err: unknown): DatabaseErrorKind | undefined {
  const code = (err as { code?: unknown } | null)?.code
  if (typeof code !== 'string') return err instanceof Error && LOST_CONNECTION.test(err.message) ? 'unavailable' : undefined
  if (code in POSTGRES_CODES) return POSTGRES_CODES[code]
  if (NETWORK_CODES.has(code)) return 'unavailable'
  if (code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY') return 'unique-violation'
  if (code.startsWith('SQLITE_READONLY')) return 'read-only'
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return 'busy'
  // A full disk, failing storage, a file that cannot be opened: SQLite cannot serve us now.
  if (code === 'SQLITE_FULL' || code.startsWith('SQLITE_IOERR') || code.startsWith('SQLITE_CANTOPEN')) return 'unavailable'
  return undefined
}

/** Whether the database cannot be used right now (see {@link classifyDatabaseError}), here or in a cause. */
export function isDatabaseUnavailable (err: unknown): boolean {
  for (let cause = err, depth = 0; cause !== undefined && cause !== null && depth < 5; cause = (cause as { cause?: unknown }).cause, depth++) {
    if (classifyDatabaseError(cause) === 'unavailable') return true
  }
  return false
}

/**
 * Whether the connection to a database server was lost (not refused, not a server's error): a
 * COMMIT that fails this way may have been applied or not, and nobody can tell from here.
 */
export function isLostConnection (err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === '57P01' || code === '57P02' || code === '08006') return true
  return code === undefined && err instanceof Error && LOST_CONNECTION.test(err.message) && !err.message.startsWith('timeout exceeded')
}
