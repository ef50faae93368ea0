/**
 * The built app (dist/), as `quiesce serve` builds it, for the benchmarks that compare it with
 * and without the maintenance plugin: every variant runs this same script, only
 * BENCH_MAINTENANCE differs. Nothing is seeded and no manager is created here (the benchmark
 * does that with the CLI first).
 *
 * env: QUIESCE_* as for `quiesce serve`, HOST, PORT (0 = any), BENCH_MAINTENANCE=0 for
 * `buildApp({ maintenance: false })` (no gate, no commit guard, no tasks). Prints `listening <url>`.
 */
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import type * as AppModule from '../app/app.js'
import type * as ConfigModule from '../app/config.js'
import type * as DatabaseModule from '../app/db/database.js'

const dist = path.resolve(import.meta.dirname, '../dist/app')
const load = async <T>(file: string) => await import(pathToFileURL(path.join(dist, file)).href) as T
const { buildApp } = await load<typeof AppModule>('app.js')
const { loadConfig } = await load<typeof ConfigModule>('config.js')
const { openDatabase } = await load<typeof DatabaseModule>('db/database.js')

const config = loadConfig()
const database = await openDatabase(config.database, { replicas: config.replicas, onIdleError: (err) => console.error(`idle database connection failed: ${err.message}`) })
const app = await buildApp({
  config,
  database,
  maintenance: process.env.BENCH_MAINTENANCE !== '0',
  logger: { level: 'warn' },
})
const address = await app.listen({ host: config.host, port: config.port })
process.stdout.write(`listening ${address}\n`)

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    // Closing the app closes the database too (and ends the event streams, the task runner, …).
    app.close().then(() => process.exit(0), (err: unknown) => {
      console.error(err)
      process.exit(1)
    })
  })
}
