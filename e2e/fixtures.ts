/**
 * The people in the end-to-end stories. e2e/serve.ts creates them with the built CLI before
 * the server starts (users with `quiesce user add`, the emergency user with
 * `quiesce emergency-user`), and the specs sign in as them; both read them from here.
 */
export interface TestUser {
  name: string
  password: string
  role: 'member' | 'manager' | 'emergency'
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
  /** Is editing a document when the site goes read-only. */
  dora: { name: 'dora', password: 'dora-e2e-password', role: 'member' },
  /** Finds the site closed while it is exclusive. */
  emil: { name: 'emil', password: 'emil-e2e-password', role: 'member' },
  /** A second manager, who cannot change the mode while maria is the maintainer. */
  felix: { name: 'felix', password: 'felix-e2e-password', role: 'manager' },
  /** The emergency user from the access file: may always change the mode, and takes over. */
  rescue: { name: 'rescue', password: 'rescue-e2e-password', role: 'emergency' },
} as const satisfies Record<string, TestUser>
