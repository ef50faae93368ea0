/**
 * The people in the end-to-end stories. e2e/serve.ts creates them with the built CLI before
 * the server starts, and the specs sign in as them; both read them from here.
 */
export interface TestUser {
  name: string
  password: string
  role: 'member' | 'manager'
}

export const E2E_PORT = 3200

export const users = {
  /** A manager exists, so a new site does not create (and print) its own `admin`. */
  maria: { name: 'maria', password: 'maria-e2e-password', role: 'manager' },
  /** Writes the documents that visitors browse. */
  ann: { name: 'ann', password: 'ann-e2e-password', role: 'member' },
  /** Creates and edits a document. */
  ben: { name: 'ben', password: 'ben-e2e-password', role: 'member' },
  /** Gets her password wrong once. */
  cleo: { name: 'cleo', password: 'cleo-e2e-password', role: 'member' },
} as const satisfies Record<string, TestUser>
