import { spawn, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { sql } from 'kysely'
import { afterAll, describe, expect, it } from 'vitest'
import { insertUser } from '../app/auth/users.js'
import { parseDatabaseUrl } from '../app/config.js'
import { DEMO_DOCUMENTS } from '../app/content/seed.js'
import { openDatabase } from '../app/db/database.js'
import { migrations } from '../app/db/migrate.js'
import { setUpNewSite } from '../app/site.js'
import { cliEnv } from './helpers/cli.js'
import { createTestDatabase, DATABASE_KINDS, type TestDatabase } from './helpers/databases.js'

const FIXTURE = path.resolve('test/fixtures/start-together.ts')

interface Exit { code: number | null, stdout: string, stderr: string }

/** Starts `quiesce ARGS` in a process of its own that waits for `startAt` before it begins. */
function startAt (startAtMs: number, env: NodeJS.ProcessEnv, args: string[], input?: string) {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, String(startAtMs), ...args], {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
  child.stdin.end(input ?? '')
  const exited = new Promise<Exit>((resolve) => child.on('exit', (code) => resolve({ code, stdout, stderr })))
  return { child, exited, output: () => stdout }
}

/** Resolves once `quiesce serve` says it is serving; then stops it as a terminal would. */
async function serveThenStop (server: { child: ChildProcess, exited: Promise<Exit>, output: () => string }): Promise<Exit> {
  const deadline = Date.now() + 60_000
  while (!server.output().includes('Quiesce is serving') && Date.now() < deadline && server.child.exitCode === null) {
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  server.child.kill('SIGTERM')
  return server.exited
}

describe.each(DATABASE_KINDS)('processes starting at the same moment on a new %s database', (kind) => {
  const databases: TestDatabase[] = []
  afterAll(async () => {
    for (const database of databases.splice(0)) await database.drop()
  })

  it('all start: migrations run once, the new site is set up once, nothing is lost', { timeout: 120_000 }, async () => {
    const site = await createTestDatabase(kind)
    databases.push(site)
    const env = { ...cliEnv(site), PORT: '0' }
    // Time for every process to load its code before the common instant.
    const at = Date.now() + 4000
    const servers = [0, 1].map((i) => startAt(at, { ...env, QUIESCE_INSTANCE_ID: `racer-${i}` }, ['serve']))
    const members = ['ann', 'ben'].map((name) => startAt(at, env, ['user', 'add', name, '--role', 'member'], `${name}-password\n`))
    const migrator = startAt(at, env, ['migrate'])

    const exits = [...await Promise.all(servers.map(serveThenStop)), ...await Promise.all([...members, migrator].map((p) => p.exited))]
    for (const exit of exits) expect({ code: exit.code, stderr: exit.stderr }).toEqual({ code: 0, stderr: '' })

    // The first manager's password is printed once, by whichever server set the site up.
    const printed = exits.filter((exit) => exit.stdout.includes('password:  '))
    expect(printed).toHaveLength(1)

    const database = await openDatabase(kind === 'sqlite' ? site.url : parseDatabaseUrl((site.url as { url: string }).url))
    try {
      const count = async (table: string) => Number((await sql<{ n: string | number }>`select count(*) as n from ${sql.table(table)}`.execute(database.writer)).rows[0]!.n)
      const users = await database.writer.selectFrom('app_user').select(['username', 'role']).orderBy('username').execute()
      expect(users).toEqual([
        { username: 'admin', role: 'manager' },
        { username: 'ann', role: 'member' },
        { username: 'ben', role: 'member' },
      ])
      // Demo documents only when a server found the site empty (before the members were added), and then once.
      const documents = await count('document')
      expect([0, DEMO_DOCUMENTS]).toContain(documents)
      expect(await count('catalog')).toBe(documents)
      const applied = await database.writer.selectFrom('kysely_migration' as never).select('name' as never).execute() as Array<{ name: string }>
      expect(applied.map((row) => row.name).sort()).toEqual(Object.keys(migrations).sort())
      expect(await count('maintenance_state')).toBe(1)
    } finally {
      await database.destroy()
    }
  })

  it('two first starts on two connections at the same moment set the site up once', async () => {
    for (let round = 0; round < 6; round++) {
      const site = await createTestDatabase(kind)
      databases.push(site)
      const [one, two] = [await openDatabase(site.url), await openDatabase(site.url)]
      try {
        // Every other round the site has a member already: no demo documents, but a manager is still due.
        const withMember = round % 2 === 1
        if (withMember) await insertUser(one.writer, { username: 'ann', passwordHash: 'irrelevant', role: 'member' })
        const created = await Promise.all([setUpNewSite(one), setUpNewSite(two)])
        expect(created.filter((manager) => manager !== undefined)).toHaveLength(1)
        const documents = await one.writer.selectFrom('document').select((eb) => eb.fn.countAll<string | number>().as('n')).executeTakeFirstOrThrow()
        expect(Number(documents.n)).toBe(withMember ? 0 : DEMO_DOCUMENTS)
      } finally {
        await one.destroy()
        await two.destroy()
      }
    }
  })
})
