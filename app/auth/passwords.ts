import { hash, verify } from '@node-rs/argon2'

/** argon2id with the library's defaults (m=19 MiB, t=2, p=1), as OWASP recommends. */
export async function hashPassword (password: string): Promise<string> {
  return hash(password)
}

export async function verifyPassword (passwordHash: string, password: string): Promise<boolean> {
  try {
    return await verify(passwordHash, password)
  } catch {
    // A malformed hash (a hand-edited access file, say) never matches.
    return false
  }
}

const MIN_PASSWORD_LENGTH = 8

export function passwordProblem (password: string): string | undefined {
  if (password.length < MIN_PASSWORD_LENGTH) return `must be at least ${MIN_PASSWORD_LENGTH} characters`
  if (password.length > 1024) return 'must be at most 1024 characters'
  return undefined
}
