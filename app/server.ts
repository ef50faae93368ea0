import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import { buildApp } from './app.js'
import type { FirstManager } from './auth/bootstrap.js'
import { ensureSessionSecret, type Config } from './config.js'
import { openDatabase } from './db/database.js'
import { setUpNewSite } from './setup.js'

export interface ServeOptions {
  /** Where first-start messages (the generated admin password) go. */
  print?: (line: string) => void
}

/**
 * The process: open and migrate the database, set up a new site (demo documents, a first
 * manager), build the app, listen, and close gracefully on SIGINT/SIGTERM.
 */
export async function serve (config: Config, options: ServeOptions = {}): Promise<FastifyInstance> {
  const print = options.print ?? ((line: string) => process.stdout.write(line + '\n'))
  ensureSessionSecret(config)
  const logger = { level: config.logLevel }
  const database = await openDatabase(config.database, { replicas: config.replicas })
  let app: FastifyInstance
  let firstManager: FirstManager | undefined
  try {
    firstManager = await setUpNewSite(database)
    app = await buildApp({ config, database, logger })
  } catch (err) {
    await database.destroy()
    throw err
  }

  const graceful = closeWithGrace({ delay: 10_000 }, async function closeApp ({ signal, err }) {
    if (err) app.log.error({ err }, 'closing after an uncaught error')
    else app.log.info({ signal }, 'closing')
    await app.close()
  })
  app.addHook('onClose', async function stopListeningForSignals () {
    graceful.uninstall()
  })

  const address = await app.listen({ host: config.host, port: config.port })
  if (firstManager !== undefined) {
    print([
      '',
      '  A manager account was created for this new site; the password is shown only this once:',
      '',
      `    user:      ${firstManager.username}`,
      `    password:  ${firstManager.password}`,
      '',
      `  Sign in at ${address}/login and change it with \`quiesce user passwd ${firstManager.username}\`.`,
      '',
    ].join('\n'))
  }
  print(`Quiesce is serving ${address} (database: ${database.location})`)
  return app
}
