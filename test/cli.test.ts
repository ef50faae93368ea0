import { existsSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { Readable } from 'node:stream'
import { sql } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { authenticate } from '../app/auth/authenticate.js'
import { USAGE, main } from '../app/cli/main.js'
import { openDatabase, type Database } from '../app/db/database.js'
import { migrations } from '../app/db/migrate.js'
import { capture, type Run } from './helpers/cli.js'
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from './helpers/databases.js'

const ARGON2ID_PHC = /^\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/

describe.each(DATABASE_KINDS)('the quiesce command on %s', (kind) => {
  let testDatabase: TestDatabase
  let database: Database
  let env: NodeJS.ProcessEnv
  let accessFile: string

  beforeAll(async () => {
    testDatabase = await createTestDatabase(kind)
    const url = testDatabase.url.kind === 'sqlite' ? `sqlite:${testDatabase.url.file}` : testDatabase.url.url
    env = { QUIESCE_DATA_DIR: testDatabase.dataDir, QUIESCE_DATABASE_URL: url, QUIESCE_LOG_LEVEL: 'silent' }
    accessFile = path.join(testDatabase.dataDir, 'access')
    database = await openDatabase(testDatabase.url)
  })
  afterAll(async () => {
    await database?.destroy()
    await testDatabase?.drop()
  })

  /** Runs `quiesce ...argv` in this process, with `stdin` piped in, as a script would. */
  async function quiesce (argv: string[], stdin = '', extraEnv: NodeJS.ProcessEnv = {}): Promise<Run> {
    const stdout = capture()
    const stderr = capture()
    const code = await main(argv, { stdin: Readable.from([stdin]), stdout: stdout.stream, stderr: stderr.stream, env: { ...env, ...extraEnv } })
    return { code, stdout: stdout.text(), stderr: stderr.text() }
  }

  async function userRow (username: string) {
    return database.writer.selectFrom('app_user').selectAll().where('username', '=', username).executeTakeFirst()
  }

  async function count (table: 'document' | 'catalog' | 'app_user'): Promise<number> {
    const { rows } = await sql<{ n: string | number }>`select count(*) as n from ${sql.table(table)}`.execute(database.writer)
    return Number(rows[0]!.n)
  }

  it('without arguments prints the usage on stderr and exits 2', async () => {
    const run = await quiesce([])
    expect(run).toEqual({ code: 2, stdout: '', stderr: USAGE + '\n' })
  })

  it.each([['help'], ['--help'], ['-h']])('%s prints the usage on stdout and exits 0', async (flag) => {
    expect(await quiesce([flag])).toEqual({ code: 0, stdout: USAGE + '\n', stderr: '' })
  })

  it('an unknown command exits 2 and says which', async () => {
    const run = await quiesce(['frobnicate'])
    expect(run.code).toBe(2)
    expect(run.stdout).toBe('')
    expect(run.stderr).toBe(`quiesce: unknown command "frobnicate"\n\n${USAGE}\n`)
  })

  it('an unknown option exits 2', async () => {
    const run = await quiesce(['user', 'add', 'opt-user', '--role', 'member', '--colour', 'red'], 'opt-user-password\n')
    expect(run.code).toBe(2)
    expect(run.stderr).toMatch(/^quiesce: .*--colour/)
    expect(await userRow('opt-user')).toBeUndefined()
  })

  it('a bad configuration exits 2 and names the variable, without the usage', async () => {
    const run = await quiesce(['migrate'], '', { QUIESCE_RETRY_ATTEMPTS: '0' })
    expect(run).toEqual({ code: 2, stdout: '', stderr: 'quiesce: invalid configuration: QUIESCE_RETRY_ATTEMPTS must be >= 1\n' })
  })

  it('migrate brings the schema up to date and exits 0', async () => {
    const run = await quiesce(['migrate'])
    expect(run.code).toBe(0)
    expect(run.stderr).toBe('')
    expect(run.stdout).toBe(`schema is up to date (${database.location})\n`)
    const { rows: applied } = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(database.writer)
    expect(applied.map((row) => row.name)).toEqual(Object.keys(migrations).sort())
    expect(await quiesce(['migrate'])).toMatchObject({ code: 0 })
  })

  it('migrate takes no arguments', async () => {
    expect(await quiesce(['migrate', 'now'])).toMatchObject({ code: 2, stdout: '' })
  })

  describe('user add', () => {
    it('adds a user with the password from stdin and exits 0', async () => {
      const run = await quiesce(['user', 'add', 'ann', '--role', 'member'], 'ann-secret-1\n')
      expect(run).toEqual({ code: 0, stdout: 'added member ann\n', stderr: '' })
      const row = await userRow('ann')
      expect(row).toMatchObject({ username: 'ann', role: 'member', version: 1 })
      expect(row!.password_hash).toMatch(ARGON2ID_PHC)
      expect(await authenticate(database.reader, accessFile, 'ann', 'ann-secret-1')).toEqual({ name: 'ann', role: 'member' })
    })

    it('adds a manager; only the first line of stdin is the password', async () => {
      const run = await quiesce(['user', 'add', 'meg', '--role', 'manager'], 'meg-secret-1\r\nignored second line\n')
      expect(run.code).toBe(0)
      expect(await userRow('meg')).toMatchObject({ role: 'manager' })
      expect(await authenticate(database.reader, accessFile, 'meg', 'meg-secret-1')).toEqual({ name: 'meg', role: 'manager' })
    })

    it('refuses a duplicate with exit 1 and leaves the first one alone', async () => {
      await quiesce(['user', 'add', 'dup-user', '--role', 'member'], 'first-password\n')
      const before = await userRow('dup-user')
      const run = await quiesce(['user', 'add', 'dup-user', '--role', 'manager'], 'second-password\n')
      expect(run).toEqual({ code: 1, stdout: '', stderr: 'quiesce: a user named dup-user already exists\n' })
      expect(await userRow('dup-user')).toEqual(before)
      expect(await authenticate(database.reader, accessFile, 'dup-user', 'first-password')).toEqual({ name: 'dup-user', role: 'member' })
    })

    it.each([
      [['--role', 'admin'], '--role must be member or manager'],
      [[], '--role must be member or manager'],
    ])('refuses role options %j with exit 2', async (options, message) => {
      const run = await quiesce(['user', 'add', 'role-user', ...options], 'role-user-password\n')
      expect(run.code).toBe(2)
      expect(run.stderr).toBe(`quiesce: ${message}\n\n${USAGE}\n`)
      expect(await userRow('role-user')).toBeUndefined()
    })

    it.each(['Ann', 'a', 'ann:x', '.ann', 'x'.repeat(41)])('refuses the name %j with exit 2', async (name) => {
      const run = await quiesce(['user', 'add', name, '--role', 'member'], 'a-good-password\n')
      expect(run.code).toBe(2)
      expect(run.stderr).toMatch(/^quiesce: NAME must be 2–40 characters/)
      expect(await userRow(name)).toBeUndefined()
    })

    it('refuses a short password with exit 1', async () => {
      const run = await quiesce(['user', 'add', 'short-pw', '--role', 'member'], 'short\n')
      expect(run).toEqual({ code: 1, stdout: '', stderr: 'quiesce: the password must be at least 8 characters\n' })
      expect(await userRow('short-pw')).toBeUndefined()
    })

    it('refuses an empty stdin with exit 1', async () => {
      const run = await quiesce(['user', 'add', 'no-pw', '--role', 'member'], '')
      expect(run).toEqual({ code: 1, stdout: '', stderr: 'quiesce: no password on stdin\n' })
      expect(await userRow('no-pw')).toBeUndefined()
    })

    it('needs exactly one name', async () => {
      expect((await quiesce(['user', 'add', '--role', 'member'], 'a-good-password\n')).code).toBe(2)
      expect((await quiesce(['user', 'add', 'one', 'two', '--role', 'member'], 'a-good-password\n')).code).toBe(2)
      expect(await userRow('one')).toBeUndefined()
    })

    it.each([[['user']], [['user', 'frobnicate', 'ann']]])('%j is bad usage', async (argv) => {
      const run = await quiesce(argv)
      expect(run.code).toBe(2)
      expect(run.stderr).toBe(`quiesce: expected user add|passwd|role|disable|enable|remove NAME, or user list\n\n${USAGE}\n`)
    })
  })

  describe('user passwd', () => {
    it('changes the password: the new one signs in, the old one no longer does', async () => {
      await quiesce(['user', 'add', 'pat', '--role', 'member'], 'pat-old-password\n')
      const run = await quiesce(['user', 'passwd', 'pat'], 'pat-new-password\n')
      expect(run).toEqual({ code: 0, stdout: 'changed the password of pat; their sessions were ended\n', stderr: '' })
      expect(await authenticate(database.reader, accessFile, 'pat', 'pat-new-password')).toEqual({ name: 'pat', role: 'member' })
      expect(await authenticate(database.reader, accessFile, 'pat', 'pat-old-password')).toBeUndefined()
      const row = await userRow('pat')
      expect(row).toMatchObject({ version: 2, role: 'member' })
      expect(row!.updated_at > row!.created_at).toBe(true)
    })

    it('for a user who does not exist exits 1 and adds nobody', async () => {
      const run = await quiesce(['user', 'passwd', 'ghost'], 'ghost-password\n')
      expect(run).toEqual({ code: 1, stdout: '', stderr: 'quiesce: there is no user named ghost\n' })
      expect(await userRow('ghost')).toBeUndefined()
    })

    it('refuses a short password with exit 1 and keeps the old one', async () => {
      await quiesce(['user', 'add', 'kim', '--role', 'member'], 'kim-password\n')
      const run = await quiesce(['user', 'passwd', 'kim'], 'short\n')
      expect(run.code).toBe(1)
      expect(await authenticate(database.reader, accessFile, 'kim', 'kim-password')).toEqual({ name: 'kim', role: 'member' })
    })
  })

  describe('user role, disable, enable, remove, list', () => {
    async function userLog (username: string) {
      return database.writer.selectFrom('user_log').select(['actor', 'channel', 'action', 'detail']).where('username', '=', username).orderBy('id').execute()
    }

    it('disable stops sign-in and ends the sessions; enable undoes it; remove needs a disabled user; each is in the user log', async () => {
      await quiesce(['user', 'add', 'rita', '--role', 'member'], 'rita-password\n')
      await database.writer.insertInto('session').values({ sid: 'rita-session', data: JSON.stringify({ principal: { name: 'rita', role: 'member' } }), expires_at: '2999-01-01T00:00:00.000Z', principal: 'rita' }).execute()
      expect(await quiesce(['user', 'remove', 'rita'])).toEqual({ code: 1, stdout: '', stderr: 'quiesce: rita must be disabled before they can be removed (quiesce user disable rita)\n' })

      expect(await quiesce(['user', 'disable', 'rita'])).toEqual({ code: 0, stdout: 'disabled rita: they cannot sign in, and their sessions were ended\n', stderr: '' })
      expect(await userRow('rita')).toMatchObject({ disabled_by: 'cli', version: 2 })
      expect(await authenticate(database.reader, accessFile, 'rita', 'rita-password')).toBeUndefined()
      expect(await database.writer.selectFrom('session').select('sid').where('sid', '=', 'rita-session').executeTakeFirst()).toBeUndefined()
      expect((await quiesce(['user', 'list'])).stdout).toMatch(/^rita\tmember\tdisabled \d{4}-\d\d-\d\dT[\d:.]+Z by cli$/m)

      expect(await quiesce(['user', 'enable', 'rita'])).toEqual({ code: 0, stdout: 'enabled rita\n', stderr: '' })
      expect(await authenticate(database.reader, accessFile, 'rita', 'rita-password')).toEqual({ name: 'rita', role: 'member' })
      expect((await quiesce(['user', 'list'])).stdout).toMatch(/^rita\tmember\tactive$/m)

      expect(await quiesce(['user', 'role', 'rita', '--role', 'manager'])).toEqual({ code: 0, stdout: 'rita is a manager now; their sessions were ended\n', stderr: '' })
      expect((await quiesce(['user', 'role', 'rita', '--role', 'boss'])).code).toBe(2)
      expect((await quiesce(['user', 'disable', 'rita'])).code).toBe(0)
      expect(await quiesce(['user', 'remove', 'rita'])).toEqual({ code: 0, stdout: 'removed rita\n', stderr: '' })
      expect(await userRow('rita')).toBeUndefined()
      expect(await quiesce(['user', 'disable', 'rita'])).toEqual({ code: 1, stdout: '', stderr: 'quiesce: there is no user named rita\n' })
      expect((await userLog('rita')).map((entry) => [entry.actor, entry.channel, entry.action])).toEqual([
        ['cli', 'cli', 'added'], ['cli', 'cli', 'disabled'], ['cli', 'cli', 'enabled'], ['cli', 'cli', 'role'], ['cli', 'cli', 'disabled'], ['cli', 'cli', 'removed'],
      ])
    })

    it('refuses to take away the last manager who can sign in, by role or by disabling', async () => {
      await quiesce(['user', 'add', 'last-one', '--role', 'manager'], 'last-one-password\n')
      const others = (await database.writer.selectFrom('app_user').select('username').where('role', '=', 'manager').where('disabled_at', 'is', null).where('username', '!=', 'last-one').execute()).map((row) => row.username)
      for (const name of others) expect((await quiesce(['user', 'disable', name])).code).toBe(0)
      const refusal = 'quiesce: refused: last-one is the last manager who can sign in, and the site needs one; make someone else a manager first\n'
      expect(await quiesce(['user', 'disable', 'last-one'])).toEqual({ code: 1, stdout: '', stderr: refusal })
      expect(await quiesce(['user', 'role', 'last-one', '--role', 'member'])).toEqual({ code: 1, stdout: '', stderr: refusal })
      expect(await userRow('last-one')).toMatchObject({ role: 'manager', disabled_at: null, version: 1 })
      for (const name of others) expect((await quiesce(['user', 'enable', name])).code).toBe(0)
    })
  })

  describe('emergency-user', () => {
    it('writes root:$argon2id$… to the access file with mode 0600', async () => {
      const run = await quiesce(['emergency-user', 'root'], 'root-emergency-1\n')
      expect(run).toEqual({ code: 0, stdout: `wrote the emergency user root to ${accessFile}\n`, stderr: '' })
      const text = readFileSync(accessFile, 'utf8')
      const lines = text.split('\n').filter((line) => line !== '' && !line.startsWith('#'))
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(/^root:\$argon2id\$/)
      expect(lines[0]!.slice('root:'.length)).toMatch(ARGON2ID_PHC)
      expect(statSync(accessFile).mode & 0o777).toBe(0o600)
      expect(await authenticate(database.reader, accessFile, 'root', 'root-emergency-1')).toEqual({ name: 'root', role: 'emergency' })
    })

    it('replaces the emergency user when run again', async () => {
      await quiesce(['emergency-user', 'root'], 'root-emergency-1\n')
      const run = await quiesce(['emergency-user', 'breakglass'], 'breakglass-pw-2\n')
      expect(run.code).toBe(0)
      const lines = readFileSync(accessFile, 'utf8').split('\n').filter((line) => line !== '' && !line.startsWith('#'))
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(/^breakglass:\$argon2id\$/)
      expect(await authenticate(database.reader, accessFile, 'breakglass', 'breakglass-pw-2')).toEqual({ name: 'breakglass', role: 'emergency' })
      expect(await authenticate(database.reader, accessFile, 'root', 'root-emergency-1')).toBeUndefined()
      expect(statSync(accessFile).mode & 0o777).toBe(0o600)
    })

    it('honours QUIESCE_ACCESS_FILE', async () => {
      const elsewhere = path.join(testDatabase.dataDir, 'conf', 'break-glass')
      const run = await quiesce(['emergency-user', 'other'], 'other-password\n', { QUIESCE_ACCESS_FILE: elsewhere })
      expect(run.code).toBe(0)
      expect(readFileSync(elsewhere, 'utf8')).toMatch(/\nother:\$argon2id\$/)
    })

    it('refuses a short password with exit 1 and leaves the file as it was', async () => {
      await quiesce(['emergency-user', 'root'], 'root-emergency-1\n')
      const before = readFileSync(accessFile, 'utf8')
      const run = await quiesce(['emergency-user', 'root'], 'short\n')
      expect(run).toEqual({ code: 1, stdout: '', stderr: 'quiesce: the password must be at least 8 characters\n' })
      expect(readFileSync(accessFile, 'utf8')).toBe(before)
    })

    it('refuses a bad name or a missing one with exit 2', async () => {
      expect((await quiesce(['emergency-user', 'Root!'], 'root-emergency-1\n')).code).toBe(2)
      expect((await quiesce(['emergency-user'], 'root-emergency-1\n')).code).toBe(2)
      const fresh = path.join(testDatabase.dataDir, 'never-written')
      expect((await quiesce(['emergency-user', 'Root!'], 'root-emergency-1\n', { QUIESCE_ACCESS_FILE: fresh })).code).toBe(2)
      expect(existsSync(fresh)).toBe(false)
    })
  })

  describe('seed', () => {
    it('seed --docs 25 adds 25 documents, each with a catalog entry', async () => {
      const documents = await count('document')
      const catalog = await count('catalog')
      const run = await quiesce(['seed', '--docs', '25'])
      expect(run).toEqual({ code: 0, stdout: 'added 25 documents\n', stderr: '' })
      expect(await count('document')).toBe(documents + 25)
      expect(await count('catalog')).toBe(catalog + 25)
      const seeded = await database.writer.selectFrom('document').select(['created_by', 'version']).execute()
      expect(seeded.every((row) => row.created_by === 'quiesce' && row.version === 1)).toBe(true)
    })

    it('seeding again adds documents after the ones already there', async () => {
      const documents = await count('document')
      expect(await quiesce(['seed', '--docs', '3'])).toMatchObject({ code: 0, stdout: 'added 3 documents\n' })
      expect(await count('document')).toBe(documents + 3)
      expect(await count('catalog')).toBe(documents + 3)
    })

    it.each([[['seed', '--docs', 'x']], [['seed', '--docs', '0']], [['seed', '--docs', '2.5']], [['seed']], [['seed', '5']]])('%j is bad usage (exit 2) and adds nothing', async (argv) => {
      const documents = await count('document')
      const run = await quiesce(argv)
      expect(run.code).toBe(2)
      expect(run.stdout).toBe('')
      expect(run.stderr).toMatch(/^quiesce: /)
      expect(await count('document')).toBe(documents)
    })
  })
})
