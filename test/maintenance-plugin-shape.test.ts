import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import SQLite from 'better-sqlite3'
import Fastify, { type FastifyInstance } from 'fastify'
import { Kysely, Migrator, SqliteDialect, type Transaction } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import maintenance, {
  kyselyMaintenanceStore,
  maintenanceMigrations,
  maintenancePlugin,
  type CommitSeams,
  type MaintenancePluginOptions,
  type MaintenancePrincipal,
  type MaintenanceStore,
  type MaintenanceTables,
} from '../app/maintenance/index.js'
import { createTestDatabase, type TestDatabase } from './helpers/databases.js'

const ROOT = path.join(import.meta.dirname, '..')
const MAINTENANCE_DIR = path.join(ROOT, 'app', 'maintenance')
const SPECIFIERS = /(?:^|\s)(?:import|export)\s(?:[^'"`;]*?\sfrom\s)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g

/** The files of app/maintenance/ each file imports (type-only imports included), by file name. */
function importGraph (): Map<string, string[]> {
  const graph = new Map<string, string[]>()
  for (const file of readdirSync(MAINTENANCE_DIR).filter((name) => name.endsWith('.ts'))) {
    const text = readFileSync(path.join(MAINTENANCE_DIR, file), 'utf8')
    const imports: string[] = []
    for (const match of text.matchAll(SPECIFIERS)) {
      const specifier = match[1] ?? match[2] ?? ''
      if (specifier.startsWith('./')) imports.push(specifier.slice(2).replace(/\.js$/, '.ts'))
    }
    graph.set(file, imports)
  }
  return graph
}

/** The modules of node_modules/pg/ that importing `file` loads, asked of a fresh Node process. */
function pgModulesLoadedBy (file: string): string[] {
  const script = `import(${JSON.stringify(path.join(ROOT, file))}).then(() => {
    console.log(JSON.stringify(Object.keys(require.cache).filter((loaded) => loaded.includes('/node_modules/pg/'))))
  })`
  const output = execFileSync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: ROOT, encoding: 'utf8' })
  return JSON.parse(output.trim().split('\n').at(-1) ?? 'null')
}

describe('the maintenance plugin\'s modules', () => {
  it('import each other directly, never through index.ts, and without a cycle', () => {
    const graph = importGraph()
    expect(graph.size).toBeGreaterThan(10)
    for (const [file, imports] of graph) {
      expect(imports.includes('index.ts'), `${file} imports index.ts`).toBe(false)
      for (const imported of imports) expect(graph.has(imported), `${file} imports ${imported}`).toBe(true)
    }
    const done = new Set<string>()
    const cycles: string[] = []
    const visit = (file: string, path: string[]) => {
      if (path.includes(file)) {
        cycles.push([...path.slice(path.indexOf(file)), file].join(' → '))
        return
      }
      if (done.has(file)) return
      for (const imported of graph.get(file) ?? []) visit(imported, [...path, file])
      done.add(file)
    }
    for (const file of graph.keys()) visit(file, [])
    expect(cycles).toEqual([])
  })

  it('do not load pg for a host that imports the entry point (a SQLite host); the PostgreSQL listener does', () => {
    expect(pgModulesLoadedBy('app/maintenance/index.ts')).toEqual([])
    expect(pgModulesLoadedBy('app/maintenance/postgres-notifications.ts')).toContainEqual(expect.stringContaining('/node_modules/pg/lib/'))
  })

  it('export the plugin by name beside the default, wrapped by fastify-plugin with its name', () => {
    expect(maintenancePlugin).toBe(maintenance)
    expect(Reflect.get(maintenance, Symbol.for('fastify.display-name'))).toBe('quiesce-maintenance')
    expect(Reflect.get(maintenance, Symbol.for('skip-override'))).toBe(true)
  })
})

interface Tables extends MaintenanceTables {
  note: { id: string }
}

describe('the maintenance plugin\'s options', () => {
  let testDatabase: TestDatabase
  let db: Kysely<Tables>
  let store: MaintenanceStore
  const seams: CommitSeams = { onBeforeWrites () {}, onBeforeRetry () {} }

  beforeAll(async () => {
    testDatabase = await createTestDatabase('sqlite')
    db = new Kysely<Tables>({ dialect: new SqliteDialect({ database: new SQLite(testDatabase.url.kind === 'sqlite' ? testDatabase.url.file : '') }) })
    const { error } = await new Migrator({ db, provider: { getMigrations: async () => maintenanceMigrations } }).migrateToLatest()
    expect(error).toBeUndefined()
    await db.schema.createTable('note').addColumn('id', 'text', (c) => c.primaryKey()).execute()
    store = kyselyMaintenanceStore(db)
  })
  afterAll(async () => {
    await db?.destroy()
    await testDatabase?.drop()
  })

  function valid (): MaintenancePluginOptions {
    return { store, unitOfWork: seams, principalOf: () => null, instanceId: 'options-test', routes: false }
  }

  /** Registers the plugin with `options` (anything: a JavaScript host is not type-checked) and returns what registration threw. */
  async function registrationError (options: Record<string, unknown>): Promise<unknown> {
    const app = Fastify()
    try {
      await app.register(maintenance, Object.assign(valid(), options))
      await app.ready()
      return undefined
    } catch (err) {
      return err
    } finally {
      await app.close()
    }
  }

  /** What is given (a function for what needs the store, made before the test), and what the error says. */
  const refusals: Array<[string, Record<string, unknown> | (() => Record<string, unknown>), string]> = [
    ['no store', { store: undefined }, 'option "store" is required (MaintenanceStore)'],
    ['a store that is not an object', { store: 'sqlite' }, 'option "store" must be a MaintenanceStore, not "sqlite"'],
    ['a store without readInTransaction()', () => ({ store: { ...store, readInTransaction: undefined } }), 'option "store" must be a MaintenanceStore: readInTransaction() is missing or not a function'],
    ['an object that is no store at all', { store: { read: async () => ({}) } }, 'option "store" must be a MaintenanceStore: readInTransaction(), change(), switchForWindow(), windows(), scheduleWindow(), cancelWindow(), log(), countLog(), logActors(), heartbeat(), instances(), removeInstance() are missing or not a function'],
    ['no unit of work', { unitOfWork: undefined }, 'option "unitOfWork" is required (CommitSeams)'],
    ['a unit of work without onBeforeRetry()', { unitOfWork: { onBeforeWrites () {} } }, 'option "unitOfWork" must be the unit of work\'s seams (CommitSeams): onBeforeRetry() is missing or not a function'],
    ['an optional seam that is not a function', { unitOfWork: { ...seams, onBeforeCommit: true } }, 'option "unitOfWork" must be the unit of work\'s seams (CommitSeams): onBeforeCommit() is missing or not a function'],
    ['no principalOf', { principalOf: undefined }, 'option "principalOf" is required ((request: FastifyRequest) => MaintenancePrincipal | null)'],
    ['an identify that is not a function', { identify: 'name' }, 'option "identify" must be a function, not "name"'],
    ['a change signal without stop()', { changeSignal: { start: async () => {} } }, 'option "changeSignal" must be a ChangeSignal: stop() is missing or not a function'],
    ['no instanceId', { instanceId: undefined }, 'option "instanceId" is required (string)'],
    ['an empty instanceId', { instanceId: '' }, 'option "instanceId" must be a non-empty string, not ""'],
    ['a heartbeatMs of 0', { heartbeatMs: 0 }, 'option "heartbeatMs" must be a whole number of milliseconds from 1 to 2147483647, not 0'],
    ['a negative heartbeatMs', { heartbeatMs: -5 }, 'option "heartbeatMs" must be a whole number of milliseconds from 1 to 2147483647, not -5'],
    ['a fractional heartbeatMs', { heartbeatMs: 1.5 }, 'option "heartbeatMs" must be a whole number of milliseconds from 1 to 2147483647, not 1.5'],
    ['a heartbeatMs as text', { heartbeatMs: '2000' }, 'option "heartbeatMs" must be a whole number of milliseconds from 1 to 2147483647, not "2000"'],
    ['a heartbeatMs longer than a timer can wait', { heartbeatMs: 2 ** 31 }, 'option "heartbeatMs" must be a whole number of milliseconds from 1 to 2147483647, not 2147483648'],
    ['a negative scheduleMs', { scheduleMs: -1 }, 'option "scheduleMs" must be a whole number of milliseconds from 0 to 2147483647, not -1'],
    ['a retryAfterSeconds of 0', { retryAfterSeconds: 0 }, 'option "retryAfterSeconds" must be a whole number of seconds from 1 to 9007199254740991, not 0'],
    ['alwaysOpenPrefixes as one string', { alwaysOpenPrefixes: '/static/' }, 'option "alwaysOpenPrefixes" must be an array of non-empty strings, not "/static/"'],
    ['routes as text', { routes: 'no' }, 'option "routes" must be true or false, not "no"'],
    ['a registry store without removeInstance()', { registryStore: { heartbeat: async () => {} } }, 'option "registryStore" must be a store with heartbeat() and removeInstance(): removeInstance() is missing or not a function'],
    ['a misspelt option', { heartbeat: 1000 }, 'unknown option "heartbeat"; the options are store, unitOfWork, principalOf, identify, changeSignal, instanceId, retryAfterSeconds, alwaysOpenPrefixes, heartbeatMs, scheduleMs, routes, standby, describeInstance, registryStore'],
  ]

  it.each(refusals)('refuse %s at registration, naming the option', async (_case, options, message) => {
    const err = await registrationError(typeof options === 'function' ? options() : options)
    expect(err).toMatchObject({ code: 'QUIESCE_INVALID_OPTION', statusCode: 500, message: `quiesce-maintenance: ${message}` })
  })

  it('accept the smallest valid set, scheduleMs 0 and Fastify\'s own register options', async () => {
    expect(await registrationError({})).toBeUndefined()
    expect(await registrationError({ scheduleMs: 0, heartbeatMs: 2_147_483_647, alwaysOpenPrefixes: [], identify: undefined })).toBeUndefined()
    expect(await registrationError({ logLevel: 'warn' })).toBeUndefined()
  })

  describe('identify, by default the identity', () => {
    let app: FastifyInstance
    const guards: Array<Parameters<CommitSeams['onBeforeWrites']>[0]> = []
    const boss: MaintenancePrincipal = { name: 'boss', canManage: true, isEmergency: false }
    const ann: MaintenancePrincipal = { name: 'ann', canManage: false, isEmergency: false }

    /** A commit through the plugin's guard, carrying `principal` as the host's unit of work does. */
    async function commit (principal: unknown, id: string): Promise<void> {
      await db.transaction().execute(async (transaction: Transaction<Tables>) => {
        for (const guard of guards) await guard({ transaction, unitOfWork: { principal } })
        await transaction.insertInto('note').values({ id }).execute()
      })
    }

    beforeAll(async () => {
      app = Fastify()
      await app.register(maintenance, {
        store,
        unitOfWork: { onBeforeWrites (hook) { guards.push(hook) }, onBeforeRetry () {} },
        principalOf: () => null,
        instanceId: 'identify-test',
        routes: false,
      })
      await app.ready()
    })
    afterAll(async () => { await app?.close() })

    it('judges a unit of work whose principal is { name, canManage, isEmergency } as it is, and null or undefined as a visitor', async () => {
      await app.maintenance.change(boss, { mode: 'concurrent', expectedVersion: app.maintenance.state.version }, 'api')
      try {
        await commit(boss, 'by-boss')
        for (const [principal, id] of [[ann, 'by-ann'], [null, 'by-null'], [undefined, 'by-undefined']] as const) {
          await expect(commit(principal, id), id).rejects.toMatchObject({ code: 'QUIESCE_READ_ONLY', statusCode: 503 })
        }
        expect((await db.selectFrom('note').select('id').execute()).map((row) => row.id)).toEqual(['by-boss'])
      } finally {
        await app.maintenance.change(boss, { mode: 'normal', expectedVersion: app.maintenance.state.version }, 'api')
      }
    })

    it('refuses, naming the option, a principal of another shape: the host should have passed identify', async () => {
      await expect(commit({ name: 'ann', role: 'member' }, 'by-another-shape')).rejects.toMatchObject({
        code: 'QUIESCE_INVALID_OPTION',
        message: 'quiesce-maintenance: the unit of work\'s principal is not { name, canManage, isEmergency } but an object; pass the option "identify" to say who it is',
      })
      expect(await db.selectFrom('note').select('id').where('id', '=', 'by-another-shape').execute()).toEqual([])
    })
  })
})
