import { createWriteStream } from 'node:fs'
import { rm, stat } from 'node:fs/promises'
import { finished } from 'node:stream/promises'
import { parseArgs } from 'node:util'
import type { Kysely } from 'kysely'
import { writeEmergencyUser, nameProblem } from '../auth/access-file.js'
import { findPrincipal } from '../auth/authenticate.js'
import { hashPassword, passwordProblem } from '../auth/passwords.js'
import { changeRole, createUser, findUser, isRole, listUsers, removeUser, setDisabled, setPasswordHash, type User, type UserActor } from '../auth/users.js'
import { ConfigError, loadConfig, type Config } from '../config.js'
import { catalogFor } from '../content/catalog.js'
import { seedDocuments } from '../content/seed.js'
import { openDatabase, type Database } from '../db/database.js'
import type { DB } from '../db/schema.js'
import { classifyDatabaseError } from '../db/errors.js'
import { changeMaintenanceState, kyselyMaintenanceStore, MODE_LABELS, isMode, type MaintenanceState } from '../maintenance/index.js'
import { serve } from '../server.js'
import { importExport, writeExport } from '../tasks/export.js'
import { runReindex } from './reindex.js'
import { CommandError, println, readPassword, UsageError, type CliIo } from './io.js'

export const USAGE = `Usage: quiesce <command> [options]

Commands:
  serve                                  migrate the database, then serve the site
  migrate                                bring the database schema up to date
  user add NAME --role member|manager    add a user (password from stdin or a prompt)
  user passwd NAME                       change a user's password (their sessions end)
  user role NAME --role member|manager   change a user's role (their sessions end)
  user disable NAME / user enable NAME   stop a user signing in (their sessions end), or allow it again
  user remove NAME                       remove a disabled user for good
  user list                              every user, with role and status
  emergency-user NAME                    write or replace the emergency user in the access file
  seed --docs N                          add N generated documents
  reindex [--as NAME]                    rebuild the catalog, with a progress bar; runs as NAME
                                         (default: the maintainer during maintenance)
  export FILE                            write a consistent snapshot of all data (- for stdout)
  import FILE                            load an export into a new, empty database
  status [--json]                        the maintenance state and the instances
  mode MODE --as NAME [--reason TEXT] [--until ISO-8601]
                                         switch to normal, concurrent or exclusive as NAME
                                         (a manager or the emergency user), by the web's rules

Configuration comes from environment variables (see README). Exit codes: 0 success,
1 refused or failed, 2 bad usage or configuration.`

interface Command {
  options?: Record<string, { type: 'string' | 'boolean' }>
  run (args: { positionals: string[], values: Record<string, string | boolean | undefined>, config: Config, io: CliIo }): Promise<number | undefined>
}

/** Opens the database for one command and always closes it. */
async function withDatabase<T> (config: Config, work: (database: Database) => Promise<T>): Promise<T> {
  const database = await openDatabase(config.database)
  try {
    return await work(database)
  } finally {
    await database.destroy()
  }
}

/** The command line acts as `cli` in the user log: whoever runs it can read the database anyway. */
const CLI_ACTOR: UserActor = { name: 'cli', channel: 'cli' }

/**
 * One change to the user NAME, in one transaction, by the same rules as the control panel
 * (the site keeps a manager who can sign in); a refusal becomes the command's error message.
 */
async function changeUser (config: Config, name: string, change: (transaction: Kysely<DB>, user: User) => Promise<void>): Promise<void> {
  await withDatabase(config, async (database) => {
    try {
      await database.writer.transaction().execute(async (transaction) => {
        const user = await findUser(transaction, name)
        if (user === undefined) throw new CommandError(`there is no user named ${name}`)
        await change(transaction, user)
      })
    } catch (err) {
      const fields = (err as { fields?: Record<string, string> }).fields
      if (fields?.user !== undefined) throw new CommandError(`refused: ${fields.user}`)
      throw err
    }
  })
}

function exactly (positionals: string[], count: number, what: string): string[] {
  if (positionals.length !== count) throw new UsageError(`expected ${what}`)
  return positionals
}

async function newPassword (io: CliIo, prompt: string): Promise<string> {
  const password = await readPassword(io, prompt)
  const problem = passwordProblem(password)
  if (problem !== undefined) throw new CommandError(`the password ${problem}`)
  return password
}

const COMMANDS: Record<string, Command> = {
  reindex: {
    options: { as: { type: 'string' } },
    async run ({ positionals, values, config, io }) {
      exactly(positionals, 0, 'reindex [--as NAME]')
      return runReindex(config, io, typeof values.as === 'string' ? values.as : undefined)
    },
  },

  export: {
    async run ({ positionals, config, io }) {
      const [file] = exactly(positionals, 1, 'export FILE')
      const summary = await withDatabase(config, async (database) => {
        if (file === '-') return writeExport(database, io.stdout as NodeJS.WritableStream & import('node:stream').Writable)
        const output = createWriteStream(file!, { mode: 0o600 })
        try {
          const written = await writeExport(database, output)
          output.end()
          await finished(output)
          return written
        } catch (err) {
          output.destroy()
          await rm(file!, { force: true })
          throw err
        }
      })
      const rows = Object.entries(summary.rows).map(([table, n]) => `${n} ${table}`).join(', ')
      println(io.stderr, `exported ${rows} up to commit ${summary.lastCommit} (${summary.bytes} bytes)`)
      return 0
    },
  },

  import: {
    async run ({ positionals, config, io }) {
      const [file] = exactly(positionals, 1, 'import FILE')
      // A pipe would be empty the second time (a missing file is for the import to report).
      const found = await stat(file!).catch(() => undefined)
      if (found !== undefined && !found.isFile()) throw new CommandError(`${file} is not a regular file: an import reads its file twice (to check it, then to load it), so save the export to a file first`)
      const summary = await withDatabase(config, (database) => importExport(database, catalogFor(database.kind), file!))
      const rows = Object.entries(summary.rows).map(([table, n]) => `${n} ${table}`).join(', ')
      println(io.stdout, `imported ${rows} (export up to commit ${summary.lastCommit}); the catalog was rebuilt`)
      return 0
    },
  },

  status: {
    options: { json: { type: 'boolean' } },
    async run ({ positionals, values, config, io }) {
      exactly(positionals, 0, 'status [--json]')
      const { state, instances } = await withDatabase(config, async (database) => {
        const store = kyselyMaintenanceStore(database.writer)
        return { state: await store.read(), instances: await store.instances() }
      })
      if (values.json === true) {
        println(io.stdout, JSON.stringify({ ...state, instances }, null, 2))
        return 0
      }
      for (const line of describeState(state)) println(io.stdout, line)
      println(io.stdout, `instances:   ${instances.length === 0 ? 'none running' : ''}`)
      for (const instance of instances) {
        const applied = instance.stateVersion >= state.version ? 'applied' : `behind (v${instance.stateVersion})`
        println(io.stdout, `  ${instance.id}  ${instance.address ?? '-'}  heartbeat ${instance.heartbeatAt}  ${applied}  requests ${instance.requestsInFlight}  writes ${instance.writesInFlight}`)
      }
      return 0
    },
  },

  mode: {
    options: { as: { type: 'string' }, reason: { type: 'string' }, until: { type: 'string' } },
    async run ({ positionals, values, config, io }) {
      const [mode] = exactly(positionals, 1, 'mode MODE --as NAME')
      if (!isMode(mode)) throw new UsageError('MODE must be normal, concurrent or exclusive')
      const name = values.as
      if (typeof name !== 'string' || name === '') throw new UsageError('--as NAME is required: the manager or emergency user who switches')
      const state = await withDatabase(config, async (database) => {
        const principal = await findPrincipal(database.writer, config.accessFile, name)
        if (principal === undefined) throw new CommandError(`there is no user or emergency user named ${name}`)
        const store = kyselyMaintenanceStore(database.writer)
        const current = await store.read()
        const change = { mode, reason: values.reason as string | undefined, until: values.until as string | undefined, expectedVersion: current.version }
        return (await changeMaintenanceState(store, principal, change, 'cli', config.instanceId)).state
      })
      for (const line of describeState(state)) println(io.stdout, line)
      return 0
    },
  },

  serve: {
    async run ({ positionals, config }) {
      exactly(positionals, 0, 'no arguments')
      await serve(config)
      return undefined // keep running until a signal closes the app
    },
  },

  migrate: {
    async run ({ positionals, config, io }) {
      exactly(positionals, 0, 'no arguments')
      await withDatabase(config, async (database) => {
        println(io.stdout, `schema is up to date (${database.location})`)
      })
      return 0
    },
  },

  user: {
    options: { role: { type: 'string' } },
    async run ({ positionals, values, config, io }) {
      const [action, name] = positionals
      if (action === 'add') {
        exactly(positionals, 2, 'user add NAME --role member|manager')
        const role = values.role
        if (!isRole(role)) throw new UsageError('--role must be member or manager')
        const problem = nameProblem(name!)
        if (problem !== undefined) throw new UsageError(`NAME ${problem}`)
        const password = await newPassword(io, `Password for ${name}: `)
        await withDatabase(config, async (database) => {
          try {
            await database.writer.transaction().execute(async (transaction) => {
              await createUser(transaction, CLI_ACTOR, { username: name!, passwordHash: await hashPassword(password), role })
            })
          } catch (err) {
            if (classifyDatabaseError(err) === 'unique-violation') throw new CommandError(`a user named ${name} already exists`)
            throw err
          }
        })
        println(io.stdout, `added ${role} ${name}`)
        return 0
      }
      if (action === 'passwd') {
        exactly(positionals, 2, 'user passwd NAME')
        const password = await newPassword(io, `New password for ${name}: `)
        const passwordHash = await hashPassword(password)
        await changeUser(config, name!, (transaction, user) => setPasswordHash(transaction, CLI_ACTOR, user, passwordHash, 'password'))
        println(io.stdout, `changed the password of ${name}; their sessions were ended`)
        return 0
      }
      if (action === 'role') {
        exactly(positionals, 2, 'user role NAME --role member|manager')
        const role = values.role
        if (!isRole(role)) throw new UsageError('--role must be member or manager')
        await changeUser(config, name!, (transaction, user) => changeRole(transaction, CLI_ACTOR, user, role, user.version))
        println(io.stdout, `${name} is a ${role} now; their sessions were ended`)
        return 0
      }
      if (action === 'disable' || action === 'enable') {
        exactly(positionals, 2, `user ${action} NAME`)
        await changeUser(config, name!, (transaction, user) => setDisabled(transaction, CLI_ACTOR, user, action === 'disable', user.version))
        println(io.stdout, action === 'disable' ? `disabled ${name}: they cannot sign in, and their sessions were ended` : `enabled ${name}`)
        return 0
      }
      if (action === 'remove') {
        exactly(positionals, 2, 'user remove NAME')
        await changeUser(config, name!, async (transaction, user) => {
          if (user.disabledAt === null) throw new CommandError(`${name} must be disabled before they can be removed (quiesce user disable ${name})`)
          await removeUser(transaction, CLI_ACTOR, user, user.version)
        })
        println(io.stdout, `removed ${name}`)
        return 0
      }
      if (action === 'list') {
        exactly(positionals, 1, 'user list')
        const users = await withDatabase(config, (database) => listUsers(database.writer))
        for (const user of users) {
          println(io.stdout, `${user.username}\t${user.role}\t${user.disabledAt === null ? 'active' : `disabled ${user.disabledAt} by ${user.disabledBy ?? '?'}`}`)
        }
        return 0
      }
      throw new UsageError('expected user add|passwd|role|disable|enable|remove NAME, or user list')
    },
  },

  'emergency-user': {
    async run ({ positionals, config, io }) {
      const [name] = exactly(positionals, 1, 'emergency-user NAME')
      const problem = nameProblem(name!)
      if (problem !== undefined) throw new UsageError(`NAME ${problem}`)
      const password = await newPassword(io, `Password for the emergency user ${name}: `)
      await writeEmergencyUser(config.accessFile, name!, await hashPassword(password))
      println(io.stdout, `wrote the emergency user ${name} to ${config.accessFile}`)
      return 0
    },
  },

  seed: {
    options: { docs: { type: 'string' } },
    async run ({ positionals, values, config, io }) {
      exactly(positionals, 0, 'seed --docs N')
      const count = Number(values.docs)
      if (!Number.isInteger(count) || count < 1 || count > 1_000_000) throw new UsageError('--docs must be a whole number from 1 to 1000000')
      const added = await withDatabase(config, (database) => seedDocuments(database.writer, catalogFor(database.kind), count))
      println(io.stdout, `added ${added} documents`)
      return 0
    },
  },
}

function describeState (state: MaintenanceState): string[] {
  return [
    `mode:        ${state.mode} (${MODE_LABELS[state.mode]})`,
    `maintainer:  ${state.maintainer ?? '-'}`,
    `reason:      ${state.reason ?? '-'}`,
    `since:       ${state.since}`,
    `until:       ${state.until ?? '-'}`,
    `version:     ${state.version}`,
  ]
}

/** Runs one command; returns the exit code, or undefined for `serve`, which keeps running. */
export async function main (argv: string[], io: CliIo): Promise<number | undefined> {
  const [name, ...rest] = argv
  if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
    println(name === undefined ? io.stderr : io.stdout, USAGE)
    return name === undefined ? 2 : 0
  }
  const command = COMMANDS[name]
  try {
    if (command === undefined) throw new UsageError(`unknown command "${name}"`)
    let parsed
    try {
      parsed = parseArgs({ args: rest, options: command.options ?? {}, allowPositionals: true, strict: true })
    } catch (err) {
      throw new UsageError((err as Error).message)
    }
    let config: Config
    try {
      config = loadConfig(io.env)
    } catch (err) {
      if (err instanceof ConfigError) throw new UsageError(err.message)
      throw err
    }
    return await command.run({ positionals: parsed.positionals, values: parsed.values, config, io })
  } catch (err) {
    if (err instanceof UsageError) {
      println(io.stderr, `quiesce: ${err.message}`)
      if (!(err.message.startsWith('invalid configuration'))) println(io.stderr, '\n' + USAGE)
      return 2
    }
    println(io.stderr, `quiesce: ${(err as Error).message}`)
    return 1
  }
}
