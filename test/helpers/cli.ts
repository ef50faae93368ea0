import path from 'node:path'
import { PassThrough } from 'node:stream'
import type { Database } from '../../app/db/database.js'
import type { TestDatabase } from './databases.js'
import { addPrincipals } from './principals.js'

/** What an in-process `main(argv, io)` run printed, with its exit code. */
export interface Run { code: number | undefined, stdout: string, stderr: string }

/** A stream that keeps what is written to it; `tty` makes it look like a terminal. */
export function capture (tty = false) {
  const stream = new PassThrough() as PassThrough & { isTTY?: boolean, columns?: number }
  if (tty) {
    stream.isTTY = true
    stream.columns = 120
  }
  let text = ''
  stream.on('data', (chunk: Buffer) => { text += chunk.toString() })
  return { stream, text: () => text }
}

/** The environment that points the command at a test database. */
export function cliEnv (testDatabase: TestDatabase): NodeJS.ProcessEnv {
  const url = testDatabase.url.kind === 'sqlite' ? `sqlite:${testDatabase.url.file}` : testDatabase.url.url
  return { QUIESCE_DATA_DIR: testDatabase.dataDir, QUIESCE_DATABASE_URL: url, QUIESCE_INSTANCE_ID: 'ops-laptop', QUIESCE_LOG_LEVEL: 'silent' }
}

/** The cast of test/helpers/principals.ts: two managers (boss, deputy), a member (ann) and the emergency user (root). */
export async function addOperators (database: Database, testDatabase: TestDatabase): Promise<void> {
  await addPrincipals({ database, config: { accessFile: path.join(testDatabase.dataDir, 'access') } }, ['maintainer', 'manager', 'member', 'emergency'])
}
