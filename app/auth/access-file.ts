import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import path from 'node:path'

/**
 * The access file holds the emergency user outside the database, one `name:hash` line
 * (argon2id PHC string), so that break-glass sign-in works even when the users table does not.
 */
interface AccessEntry {
  name: string
  hash: string
}

export async function readAccessFile (file: string): Promise<AccessEntry[]> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw err
  }
  const entries: AccessEntry[] = []
  for (const line of text.split('\n')) {
    const trimmed = line.trim()
    if (trimmed === '' || trimmed.startsWith('#')) continue
    const colon = trimmed.indexOf(':')
    if (colon <= 0) continue
    entries.push({ name: trimmed.slice(0, colon), hash: trimmed.slice(colon + 1) })
  }
  return entries
}

export async function findEmergencyUser (file: string, name: string): Promise<AccessEntry | undefined> {
  return (await readAccessFile(file)).find((entry) => entry.name === name)
}

/** Writes or replaces the emergency user, atomically, readable by the owner only. */
export async function writeEmergencyUser (file: string, name: string, hash: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true })
  const temporary = `${file}.${process.pid}.tmp`
  await writeFile(temporary, `# Quiesce emergency user (name:argon2id hash). Written by \`quiesce emergency-user\`.\n${name}:${hash}\n`, { mode: 0o600 })
  await chmod(temporary, 0o600)
  await rename(temporary, file)
}

export const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{1,39}$/

/** Names that Quiesce itself acts as in the audit log and on tasks. */
const RESERVED_NAMES = new Set(['scheduler', 'cli', 'import', 'quiesce'])

export function nameProblem (name: string): string | undefined {
  if (!NAME_PATTERN.test(name)) return 'must be 2–40 characters: lower-case letters, digits, dot, dash or underscore, starting with a letter or digit'
  if (RESERVED_NAMES.has(name)) return `"${name}" is reserved for Quiesce itself`
  return undefined
}
