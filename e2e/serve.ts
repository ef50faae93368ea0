/**
 * The web server for the end-to-end tests (Playwright's `webServer`): a fresh data directory,
 * the test users added with the built CLI, then `quiesce serve` on the e2e port. The data
 * directory (with the access file of the emergency user) is removed when the server stops.
 */
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { E2E_PORT, SEEDED_DOCUMENTS, users, type TestUser } from './fixtures.js'

const CLI = path.resolve('dist/app/cli/bin.js')

if (!existsSync(CLI)) {
  console.error(`e2e: ${CLI} is missing; run \`npm run build\` first (\`npm run test:e2e\` does both)`)
  process.exit(1)
}

const dataDir = mkdtempSync(path.join(tmpdir(), 'quiesce-e2e-'))
const env: NodeJS.ProcessEnv = {
  ...process.env,
  HOST: '127.0.0.1',
  PORT: String(E2E_PORT),
  QUIESCE_DATA_DIR: dataDir,
  QUIESCE_LOG_LEVEL: 'warn',
}
// Always a fresh SQLite file in the data directory, whatever the calling shell has set.
delete env.QUIESCE_DATABASE_URL
delete env.QUIESCE_ACCESS_FILE

function quiesce (args: string[], input = ''): void {
  execFileSync(process.execPath, [CLI, ...args], { env, input, stdio: ['pipe', 'ignore', 'inherit'] })
}

try {
  for (const user of Object.values<TestUser>(users)) {
    if (user.role === 'emergency') quiesce(['emergency-user', user.name], user.password + '\n')
    else quiesce(['user', 'add', user.name, '--role', user.role], user.password + '\n')
  }
  // A site whose first start finds users gets no demo documents, so add them like a new site
  // would, and more than its 200 (see SEEDED_DOCUMENTS).
  quiesce(['seed', '--docs', String(SEEDED_DOCUMENTS)])
} catch (err) {
  rmSync(dataDir, { recursive: true, force: true })
  throw err
}

const server = spawn(process.execPath, [CLI, 'serve'], { env, stdio: 'inherit' })
// Playwright (gracefulShutdown) and terminals signal the whole process group, so the server
// gets the signal too and closes gracefully; forwarding it would be a second signal, which
// makes it exit at once. Stay alive until it has closed, then remove the data directory.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, function waitForServer () {})
}
server.on('exit', function removeDataDir (code) {
  rmSync(dataDir, { recursive: true, force: true })
  process.exit(code ?? 1)
})
