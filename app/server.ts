import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import type { Config } from './config.js'
import { firstManagerNotice, openSite } from './site.js'

interface ServeOptions {
  /** Where first-start messages (the generated admin password) go. */
  print?: (line: string) => void
}

/** The process: the logger, the site, listening, and a graceful close on SIGINT/SIGTERM. */
export async function serve (config: Config, options: ServeOptions = {}): Promise<FastifyInstance> {
  const print = options.print ?? ((line: string) => process.stdout.write(line + '\n'))
  const { app, firstManager } = await openSite(config, { level: config.logLevel })

  const graceful = closeWithGrace({ delay: 10_000 }, async function closeApp ({ signal, err }) {
    if (err) app.log.error({ err }, 'closing after an uncaught error')
    else app.log.info({ signal }, 'closing')
    await app.close()
  })
  app.addHook('onClose', async function stopListeningForSignals () {
    graceful.uninstall()
  })

  const address = await app.listen({ host: config.host, port: config.port })
  if (firstManager !== undefined) print(firstManagerNotice(firstManager, address))
  print(`Quiesce is serving ${address} (database: ${app.db.location})`)
  return app
}
