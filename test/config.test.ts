import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import { afterEach, describe, expect, it } from 'vitest'
import { ConfigError, ensureSessionSecret, loadConfig, parseDatabaseUrl } from '../app/config.js'
import { PACKAGE_ROOT } from '../app/paths.js'

const run = promisify(execFile)

const temporaryDirs: string[] = []
function temporaryDir (): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'quiesce-config-'))
  temporaryDirs.push(dir)
  return dir
}

afterEach(() => {
  for (const dir of temporaryDirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

/** The ConfigError that `loadConfig(env)` throws; fails the test when it does not throw one. */
function configErrorOf (env: NodeJS.ProcessEnv): ConfigError {
  try {
    loadConfig(env)
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return err as ConfigError
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`)
}

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const config = loadConfig({})
    const dataDir = path.resolve('data')
    expect(config).toEqual({
      host: '127.0.0.1',
      port: 3000,
      dataDir,
      database: { kind: 'sqlite', file: path.join(dataDir, 'quiesce.sqlite') },
      replicas: { urls: [], maxLagMs: 2000 },
      sessionSecret: undefined,
      accessFile: path.join(dataDir, 'access'),
      instanceId: `${hostname()}:${process.pid}`,
      retryAttempts: 3,
      retryAfterSeconds: 300,
      logLevel: 'info',
      primaryOrigin: null,
      primaryDatabaseUrl: null,
    })
  })

  it('reads nothing from the process environment when given an env', () => {
    const before = process.env.PORT
    process.env.PORT = 'not a port'
    try {
      expect(loadConfig({}).port).toBe(3000)
    } finally {
      if (before === undefined) delete process.env.PORT
      else process.env.PORT = before
    }
  })

  it('takes every variable from the environment', () => {
    const dataDir = temporaryDir()
    const config = loadConfig({
      HOST: '0.0.0.0',
      PORT: '8080',
      QUIESCE_DATA_DIR: dataDir,
      QUIESCE_DATABASE_URL: 'postgres://quiesce@db.example:5432/site',
      QUIESCE_SESSION_SECRET: 'x'.repeat(32),
      QUIESCE_ACCESS_FILE: path.join(dataDir, 'break-glass'),
      QUIESCE_INSTANCE_ID: 'web-1',
      QUIESCE_RETRY_ATTEMPTS: '5',
      QUIESCE_RETRY_AFTER: '60',
      QUIESCE_LOG_LEVEL: 'warn',
      QUIESCE_PRIMARY_ORIGIN: 'https://docs.example.org/',
      QUIESCE_REPLICA_URLS: 'postgres://quiesce@replica-1.example/site, postgres://quiesce@replica-2.example:6432/site',
      QUIESCE_REPLICA_MAX_LAG_MS: '500',
      QUIESCE_PRIMARY_DATABASE_URL: 'postgres://quiesce@primary.example/site',
    })
    expect(config).toEqual({
      host: '0.0.0.0',
      port: 8080,
      dataDir,
      database: { kind: 'postgres', url: 'postgres://quiesce@db.example:5432/site' },
      replicas: { urls: ['postgres://quiesce@replica-1.example/site', 'postgres://quiesce@replica-2.example:6432/site'], maxLagMs: 500 },
      sessionSecret: 'x'.repeat(32),
      accessFile: path.join(dataDir, 'break-glass'),
      instanceId: 'web-1',
      retryAttempts: 5,
      retryAfterSeconds: 60,
      logLevel: 'warn',
      primaryOrigin: 'https://docs.example.org',
      primaryDatabaseUrl: 'postgres://quiesce@primary.example/site',
    })
  })

  it('puts the SQLite file and the access file in the data dir unless told otherwise', () => {
    const dataDir = temporaryDir()
    const config = loadConfig({ QUIESCE_DATA_DIR: dataDir })
    expect(config.database).toEqual({ kind: 'sqlite', file: path.join(dataDir, 'quiesce.sqlite') })
    expect(config.accessFile).toBe(path.join(dataDir, 'access'))
  })

  it('accepts sqlite:PATH, postgres:// and postgresql:// database URLs', () => {
    expect(loadConfig({ QUIESCE_DATABASE_URL: 'sqlite:/var/lib/quiesce/site.sqlite' }).database)
      .toEqual({ kind: 'sqlite', file: '/var/lib/quiesce/site.sqlite' })
    expect(loadConfig({ QUIESCE_DATABASE_URL: 'sqlite:relative/site.sqlite' }).database)
      .toEqual({ kind: 'sqlite', file: path.resolve('relative/site.sqlite') })
    expect(loadConfig({ QUIESCE_DATABASE_URL: 'postgresql://u:p@h/db' }).database)
      .toEqual({ kind: 'postgres', url: 'postgresql://u:p@h/db' })
  })

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['PORT', '-1'],
    ['PORT', '80.5'],
    ['QUIESCE_DATABASE_URL', 'mysql://x'],
    ['QUIESCE_DATABASE_URL', 'sqlite:'],
    ['QUIESCE_SESSION_SECRET', 'too short to be a secret'],
    ['QUIESCE_RETRY_ATTEMPTS', '0'],
    ['QUIESCE_RETRY_ATTEMPTS', 'three'],
    ['QUIESCE_RETRY_AFTER', '0'],
    ['QUIESCE_LOG_LEVEL', 'loud'],
    ['QUIESCE_PRIMARY_ORIGIN', 'docs.example.org'],
    ['QUIESCE_PRIMARY_ORIGIN', 'javascript:alert(1)'],
    ['QUIESCE_REPLICA_MAX_LAG_MS', '50'],
    ['QUIESCE_REPLICA_MAX_LAG_MS', 'two seconds'],
    ['HOST', ''],
  ])('refuses %s=%j with a ConfigError that names the variable', (variable, value) => {
    const error = configErrorOf({ [variable]: value })
    expect(error.name).toBe('ConfigError')
    expect(error.message).toMatch(/^invalid configuration: /)
    expect(error.message).toContain(variable)
  })

  it('says what a database URL must look like', () => {
    expect(configErrorOf({ QUIESCE_DATABASE_URL: 'mysql://x' }).message)
      .toBe('invalid configuration: QUIESCE_DATABASE_URL must be sqlite:PATH or postgres://…')
  })

  it.each([
    ['with SQLite', { QUIESCE_REPLICA_URLS: 'postgres://replica.example/site' },
      'invalid configuration: QUIESCE_REPLICA_URLS needs a postgres:// QUIESCE_DATABASE_URL (a SQLite database has no replicas)'],
    ['a URL that is not postgres://', { QUIESCE_DATABASE_URL: 'postgres://db.example/site', QUIESCE_REPLICA_URLS: 'postgres://r1.example/site,mysql://r2.example/site' },
      'invalid configuration: QUIESCE_REPLICA_URLS entry 2 is not a valid postgres:// URL'],
    ['an unparsable URL, without showing its password', { QUIESCE_DATABASE_URL: 'postgres://db.example/site', QUIESCE_REPLICA_URLS: 'postgres://u:secret@exa mple/site' },
      'invalid configuration: QUIESCE_REPLICA_URLS entry 1 is not a valid postgres:// URL'],
    ['an empty entry', { QUIESCE_DATABASE_URL: 'postgres://db.example/site', QUIESCE_REPLICA_URLS: 'postgres://r1.example/site,' },
      'invalid configuration: QUIESCE_REPLICA_URLS entry 2 is empty (a comma too many?)'],
    ['the primary itself', { QUIESCE_DATABASE_URL: 'postgres://u@DB.example/site', QUIESCE_REPLICA_URLS: 'postgresql://other@db.example:5432/site' },
      'invalid configuration: QUIESCE_REPLICA_URLS entry 1 is the primary itself (QUIESCE_DATABASE_URL), not a replica'],
    ['a replica twice', { QUIESCE_DATABASE_URL: 'postgres://db.example/site', QUIESCE_REPLICA_URLS: 'postgres://r1.example/site,postgres://r2.example/site,postgres://r1.example:5432/site' },
      'invalid configuration: QUIESCE_REPLICA_URLS entry 3 is the same replica as entry 1'],
  ])('refuses QUIESCE_REPLICA_URLS %s', (_case, env, message) => {
    expect(configErrorOf(env).message).toBe(message)
  })

  it.each([
    ['with SQLite', { QUIESCE_PRIMARY_DATABASE_URL: 'postgres://primary.example/site' },
      'invalid configuration: QUIESCE_PRIMARY_DATABASE_URL needs a postgres:// QUIESCE_DATABASE_URL (a standby\'s)'],
    ['a URL that is not postgres://', { QUIESCE_DATABASE_URL: 'postgres://standby.example/site', QUIESCE_PRIMARY_DATABASE_URL: 'mysql://primary.example/site' },
      'invalid configuration: QUIESCE_PRIMARY_DATABASE_URL is not a valid postgres:// URL'],
    ['the standby itself', { QUIESCE_DATABASE_URL: 'postgres://u@standby.example/site', QUIESCE_PRIMARY_DATABASE_URL: 'postgresql://v@STANDBY.example:5432/site' },
      'invalid configuration: QUIESCE_PRIMARY_DATABASE_URL is QUIESCE_DATABASE_URL itself; it is the primary of that standby'],
  ])('refuses QUIESCE_PRIMARY_DATABASE_URL %s', (_case, env, message) => {
    expect(configErrorOf(env).message).toBe(message)
  })

  it('takes an empty QUIESCE_REPLICA_URLS as no replicas, with SQLite too', () => {
    expect(loadConfig({ QUIESCE_REPLICA_URLS: ' ' }).replicas).toEqual({ urls: [], maxLagMs: 2000 })
  })

  it('names every bad variable at once', () => {
    const { message } = configErrorOf({ PORT: 'abc', QUIESCE_RETRY_ATTEMPTS: '0' })
    expect(message).toContain('PORT')
    expect(message).toContain('QUIESCE_RETRY_ATTEMPTS')
  })

  it('states each problem once, in words a person can act on', () => {
    const { message } = configErrorOf({ QUIESCE_LOG_LEVEL: 'loud' })
    expect(message.match(/QUIESCE_LOG_LEVEL/g)).toHaveLength(1)
    expect(message).toContain('fatal, error, warn, info, debug, trace, silent')
  })

  it('parseDatabaseUrl refuses other schemes and unparsable postgres URLs', () => {
    expect(() => parseDatabaseUrl('mysql://x')).toThrow(ConfigError)
    expect(() => parseDatabaseUrl('postgres://exa mple/db')).toThrow(/QUIESCE_DATABASE_URL/)
  })
})

describe('ensureSessionSecret', () => {
  it('creates a secret file with mode 0600 once, then reuses it', () => {
    const dataDir = path.join(temporaryDir(), 'not-yet-there')
    const first = loadConfig({ QUIESCE_DATA_DIR: dataDir })
    const secret = ensureSessionSecret(first)
    const file = path.join(dataDir, 'session-secret')

    expect(secret.length).toBeGreaterThanOrEqual(32)
    expect(first.sessionSecret).toBe(secret)
    expect(readFileSync(file, 'utf8')).toBe(secret + '\n')
    expect(statSync(file).mode & 0o777).toBe(0o600)

    const modified = statSync(file).mtimeMs
    const second = loadConfig({ QUIESCE_DATA_DIR: dataDir })
    expect(ensureSessionSecret(second)).toBe(secret)
    expect(second.sessionSecret).toBe(secret)
    expect(statSync(file).mtimeMs).toBe(modified)
  })

  it('gives each new data dir its own secret', () => {
    const one = ensureSessionSecret(loadConfig({ QUIESCE_DATA_DIR: temporaryDir() }))
    const two = ensureSessionSecret(loadConfig({ QUIESCE_DATA_DIR: temporaryDir() }))
    expect(one).not.toBe(two)
  })

  it('uses QUIESCE_SESSION_SECRET and writes no file when it is set', () => {
    const dataDir = temporaryDir()
    const config = loadConfig({ QUIESCE_DATA_DIR: dataDir, QUIESCE_SESSION_SECRET: 's'.repeat(40) })
    expect(ensureSessionSecret(config)).toBe('s'.repeat(40))
    expect(existsSync(path.join(dataDir, 'session-secret'))).toBe(false)
  })

  it('refuses a secret file that holds fewer than 32 characters', () => {
    const dataDir = temporaryDir()
    writeFileSync(path.join(dataDir, 'session-secret'), 'short\n', { mode: 0o600 })
    expect(() => ensureSessionSecret(loadConfig({ QUIESCE_DATA_DIR: dataDir })))
      .toThrow(ConfigError)
  })
})

describe('quiesce serve with a bad configuration', () => {
  async function serveWith (env: Record<string, string>) {
    const dataDir = temporaryDir()
    try {
      await run(process.execPath, ['--import', 'tsx', 'app/cli/bin.ts', 'serve'], {
        cwd: PACKAGE_ROOT,
        env: { PATH: process.env.PATH, HOME: process.env.HOME, QUIESCE_DATA_DIR: dataDir, ...env },
        timeout: 15_000,
      })
    } catch (err) {
      const failed = err as { code: number | string, stdout: string, stderr: string, killed: boolean }
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr, killed: failed.killed, dataDir }
    }
    throw new Error('quiesce serve started with a bad configuration')
  }

  it('stops with exit code 2 and names PORT when PORT=abc', async () => {
    const result = await serveWith({ PORT: 'abc' })
    expect(result.killed).toBe(false)
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('PORT')
    expect(result.stderr).toContain('invalid configuration')
    expect(result.stdout).toBe('')
    expect(existsSync(path.join(result.dataDir, 'quiesce.sqlite'))).toBe(false)
  })

  it('stops with exit code 2 and names QUIESCE_DATABASE_URL when it is mysql://x', async () => {
    const result = await serveWith({ QUIESCE_DATABASE_URL: 'mysql://x' })
    expect(result.killed).toBe(false)
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('QUIESCE_DATABASE_URL must be sqlite:PATH or postgres://')
    expect(result.stdout).toBe('')
  })
})
