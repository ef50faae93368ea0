/**
 * One app from dist/ answering `GET BENCH_PATH` through `inject()` BENCH_REQUESTS times, then
 * exiting: the program bench:maintenance's gate-instructions part runs under
 * `valgrind --tool=callgrind`, twice per variant (BENCH_REQUESTS = warm-up, then warm-up +
 * measured), so that the difference is the instructions of the measured requests alone.
 *
 * env: QUIESCE_* as for `quiesce serve`, BENCH_MAINTENANCE=0 for the app without the plugin,
 * BENCH_PATH, BENCH_REQUESTS.
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
const database = await openDatabase(config.database)
// The plugin's timers (heartbeat, scheduled windows, the task runner's poll) fire during the
// measured requests too and count against it: a few per second, under valgrind's slowness.
const app = await buildApp({ config, database, maintenance: process.env.BENCH_MAINTENANCE !== '0', logger: { level: 'warn' } })
await app.ready()
const url = process.env.BENCH_PATH ?? '/'
const requests = Number(process.env.BENCH_REQUESTS ?? '0')
for (let i = 0; i < requests; i++) {
  const answer = await app.inject({ method: 'GET', url })
  if (answer.statusCode !== 200) throw new Error(`GET ${url} answered ${answer.statusCode}`)
}
// No close(): what it costs is not a request's. The exit code says the requests all answered.
process.exit(0)
