import { randomBytes } from 'node:crypto'
import { existsSync, linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import path from 'node:path'
import envSchema from 'env-schema'
import { Type, type Static } from 'typebox'

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

const EnvSchema = Type.Object({
  HOST: Type.String({ default: '127.0.0.1', minLength: 1 }),
  PORT: Type.Integer({ default: 3000, minimum: 0, maximum: 65535 }),
  QUIESCE_DATA_DIR: Type.String({ default: 'data', minLength: 1 }),
  QUIESCE_DATABASE_URL: Type.Optional(Type.String({ pattern: '^(sqlite:.+|postgres(ql)?://.+)$' })),
  QUIESCE_SESSION_SECRET: Type.Optional(Type.String({ minLength: 32 })),
  QUIESCE_ACCESS_FILE: Type.Optional(Type.String({ minLength: 1 })),
  QUIESCE_INSTANCE_ID: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
  QUIESCE_RETRY_ATTEMPTS: Type.Integer({ default: 3, minimum: 1, maximum: 20 }),
  QUIESCE_RETRY_AFTER: Type.Integer({ default: 300, minimum: 1 }),
  QUIESCE_LOG_LEVEL: Type.Union(LOG_LEVELS.map((level) => Type.Literal(level)), { default: 'info' }),
  QUIESCE_PRIMARY_ORIGIN: Type.Optional(Type.String({ pattern: '^https?://[^\\s/]+(/\\S*)?$' })),
  QUIESCE_REPLICA_URLS: Type.Optional(Type.String()),
  QUIESCE_PRIMARY_DATABASE_URL: Type.Optional(Type.String()),
  // Below the replicas' poll interval (100 ms) every replica would flap in and out.
  QUIESCE_REPLICA_MAX_LAG_MS: Type.Integer({ default: 2000, minimum: 100, maximum: 3_600_000 }),
})

export type DatabaseUrl =
  | { kind: 'sqlite', file: string }
  | { kind: 'postgres', url: string }

/** Hot standbys of the PostgreSQL primary that requests may read from (app/db/replicas.ts). */
export interface ReplicaConfig {
  /** `postgres://` connection strings, in the order given; none: every read goes to the primary. */
  urls: string[]
  /** A replica further behind the primary than this is left out until it catches up. */
  maxLagMs: number
}

export interface Config {
  host: string
  port: number
  dataDir: string
  database: DatabaseUrl
  replicas: ReplicaConfig
  /** Undefined until {@link ensureSessionSecret} reads or creates it. */
  sessionSecret: string | undefined
  accessFile: string
  instanceId: string
  retryAttempts: number
  retryAfterSeconds: number
  logLevel: typeof LOG_LEVELS[number]
  /** Where the primary site is, for the pages of an instance on a standby database (null: not said). */
  primaryOrigin: string | null
  /**
   * For an instance on a standby database: the primary's connection string, where it registers
   * so that the primary's control panel lists it (null: it registers nowhere while a standby).
   */
  primaryDatabaseUrl: string | null
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

/**
 * Validates the environment once, at start. A bad value throws a ConfigError whose
 * message names the variable, so `quiesce serve` can stop with a clear message.
 */
export function loadConfig (env: NodeJS.ProcessEnv = process.env): Config {
  let parsed: Static<typeof EnvSchema>
  try {
    parsed = envSchema<Static<typeof EnvSchema>>({
      schema: EnvSchema,
      data: pick(env, Object.keys(EnvSchema.properties)),
      env: false,
    })
  } catch (err) {
    throw new ConfigError(`invalid configuration: ${describeEnvError(err)}`)
  }
  const dataDir = path.resolve(parsed.QUIESCE_DATA_DIR)
  const database = parseDatabaseUrl(parsed.QUIESCE_DATABASE_URL ?? `sqlite:${path.join(dataDir, 'quiesce.sqlite')}`)
  return {
    host: parsed.HOST,
    port: parsed.PORT,
    dataDir,
    database,
    replicas: { urls: parseReplicaUrls(parsed.QUIESCE_REPLICA_URLS ?? '', database), maxLagMs: parsed.QUIESCE_REPLICA_MAX_LAG_MS },
    sessionSecret: parsed.QUIESCE_SESSION_SECRET,
    accessFile: path.resolve(parsed.QUIESCE_ACCESS_FILE ?? path.join(dataDir, 'access')),
    instanceId: parsed.QUIESCE_INSTANCE_ID ?? `${hostname()}:${process.pid}`,
    retryAttempts: parsed.QUIESCE_RETRY_ATTEMPTS,
    retryAfterSeconds: parsed.QUIESCE_RETRY_AFTER,
    logLevel: parsed.QUIESCE_LOG_LEVEL,
    primaryOrigin: parsed.QUIESCE_PRIMARY_ORIGIN?.replace(/\/$/, '') ?? null,
    primaryDatabaseUrl: parsePrimaryDatabaseUrl(parsed.QUIESCE_PRIMARY_DATABASE_URL, database),
  }
}

export function parseDatabaseUrl (url: string): DatabaseUrl {
  if (url.startsWith('sqlite:')) {
    return { kind: 'sqlite', file: path.resolve(url.slice('sqlite:'.length)) }
  }
  if (/^postgres(ql)?:\/\//.test(url)) {
    if (!URL.canParse(url)) {
      throw new ConfigError('invalid configuration: QUIESCE_DATABASE_URL is not a valid postgres:// URL')
    }
    return { kind: 'postgres', url }
  }
  throw new ConfigError('invalid configuration: QUIESCE_DATABASE_URL must be sqlite:PATH or postgres://…')
}

/**
 * QUIESCE_REPLICA_URLS: comma-separated `postgres://` URLs of hot standbys of the primary. The
 * messages name entries by position, not by URL, so that no password reaches a log.
 */
export function parseReplicaUrls (list: string, primary: DatabaseUrl): string[] {
  if (list.trim() === '') return []
  if (primary.kind !== 'postgres') {
    throw new ConfigError('invalid configuration: QUIESCE_REPLICA_URLS needs a postgres:// QUIESCE_DATABASE_URL (a SQLite database has no replicas)')
  }
  const urls = list.split(',').map((entry) => entry.trim())
  const seen = new Map<string, number>([[serverOf(primary.url), 0]])
  urls.forEach((url, index) => {
    const entry = `QUIESCE_REPLICA_URLS entry ${index + 1}`
    if (url === '') throw new ConfigError(`invalid configuration: ${entry} is empty (a comma too many?)`)
    if (!/^postgres(ql)?:\/\//.test(url) || !URL.canParse(url)) {
      throw new ConfigError(`invalid configuration: ${entry} is not a valid postgres:// URL`)
    }
    const server = serverOf(url)
    const earlier = seen.get(server)
    if (earlier === 0) throw new ConfigError(`invalid configuration: ${entry} is the primary itself (QUIESCE_DATABASE_URL), not a replica`)
    if (earlier !== undefined) throw new ConfigError(`invalid configuration: ${entry} is the same replica as entry ${earlier}`)
    seen.set(server, index + 1)
  })
  return urls
}

/**
 * QUIESCE_PRIMARY_DATABASE_URL: the primary of the standby in QUIESCE_DATABASE_URL. Whether that
 * database is a standby is known only once it is open (and it stops being one when promoted).
 */
export function parsePrimaryDatabaseUrl (url: string | undefined, database: DatabaseUrl): string | null {
  if (url === undefined || url.trim() === '') return null
  const name = 'QUIESCE_PRIMARY_DATABASE_URL'
  if (database.kind !== 'postgres') throw new ConfigError(`invalid configuration: ${name} needs a postgres:// QUIESCE_DATABASE_URL (a standby's)`)
  if (!/^postgres(ql)?:\/\//.test(url) || !URL.canParse(url)) throw new ConfigError(`invalid configuration: ${name} is not a valid postgres:// URL`)
  if (serverOf(url) === serverOf(database.url)) throw new ConfigError(`invalid configuration: ${name} is QUIESCE_DATABASE_URL itself; it is the primary of that standby`)
  return url
}

/** Host, port and database of a connection string: what makes two URLs the same server's database. */
function serverOf (url: string): string {
  const parsed = new URL(url)
  return `${parsed.hostname.toLowerCase()}:${parsed.port || '5432'}${parsed.pathname}`
}

/**
 * The session secret comes from QUIESCE_SESSION_SECRET or from a file generated once in the
 * data dir (mode 0600), so sessions survive restarts without a secret in the repository. Of
 * two processes that start on a new data dir at once, one creates it and both use it: the
 * file appears whole (written aside, then linked into place, which fails if it exists).
 */
export function ensureSessionSecret (config: Config): string {
  if (config.sessionSecret !== undefined) return config.sessionSecret
  const file = path.join(config.dataDir, 'session-secret')
  if (!existsSync(file)) {
    mkdirSync(config.dataDir, { recursive: true })
    const aside = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`
    writeFileSync(aside, randomBytes(48).toString('base64url') + '\n', { mode: 0o600, flag: 'wx' })
    try {
      linkSync(aside, file)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    } finally {
      unlinkSync(aside)
    }
  }
  const secret = readFileSync(file, 'utf8').trim()
  if (secret.length < 32) {
    throw new ConfigError(`invalid configuration: ${file} holds a session secret shorter than 32 characters`)
  }
  config.sessionSecret = secret
  return secret
}

function pick (env: NodeJS.ProcessEnv, keys: string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const key of keys) {
    const value = env[key]
    if (value !== undefined) out[key] = value
  }
  return out
}

function describeEnvError (err: unknown): string {
  const errors = (err as { errors?: Array<{ instancePath: string, keyword?: string, message?: string, params?: Record<string, unknown> }> }).errors
  if (!errors?.length) return (err as Error).message
  // A union reports one error per alternative, then one for the union: say it once, as a list.
  const problems = new Map<string, string>()
  for (const e of errors) {
    const variable = e.instancePath.replace(/^\//, '') || String(e.params?.missingProperty ?? '')
    if (problems.has(variable)) continue
    const choices = choicesOf(variable)
    const message = e.params?.pattern !== undefined && variable === 'QUIESCE_DATABASE_URL'
      ? 'must be sqlite:PATH or postgres://…'
      : e.params?.pattern !== undefined && variable === 'QUIESCE_PRIMARY_ORIGIN'
        ? 'must be an http:// or https:// URL, such as https://example.org'
        : choices !== undefined && (e.keyword === 'const' || e.keyword === 'anyOf')
          ? `must be one of ${choices.join(', ')}`
          : e.message
    problems.set(variable, `${variable} ${message}`)
  }
  return [...problems.values()].join('; ')
}

function choicesOf (variable: string): string[] | undefined {
  const schema = (EnvSchema.properties as Record<string, { anyOf?: Array<{ const?: unknown }> }>)[variable]
  const values = schema?.anyOf?.map((alternative) => alternative.const)
  return values?.every((value) => typeof value === 'string') ? values : undefined
}
