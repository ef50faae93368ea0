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

/** Another port with QUIESCE_E2E_PORT, so that two checkouts can run their stories at once. */
export const E2E_PORT = Number(process.env.QUIESCE_E2E_PORT ?? 3200)

/**
 * Documents e2e/serve.ts seeds before the server starts. Enough for a catalog rebuild (in
 * batches of 100) to take a few seconds, so the story in reindex-readonly.spec.ts can watch its
 * progress bar advance while people browse; a few hundred would be rebuilt in a blink.
 */
export const SEEDED_DOCUMENTS = 20_000

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
  /** Rebuilds the catalog while the site is read-only. */
  greta: { name: 'greta', password: 'greta-e2e-password', role: 'manager' },
  /** Is editing a document while the catalog is rebuilt. */
  hugo: { name: 'hugo', password: 'hugo-e2e-password', role: 'member' },
  /** Manages the users: disables otto, resets pia's password, looks at the users page on a phone. */
  nina: { name: 'nina', password: 'nina-e2e-password', role: 'manager' },
  /** Is disabled while signed in. */
  otto: { name: 'otto', password: 'otto-e2e-password', role: 'member' },
  /** Forgot her password; sets a new one with the link nina gives her. */
  pia: { name: 'pia', password: 'pia-e2e-password', role: 'member' },
  /** Runs the tasks: exports the data, cancels a waiting rebuild from the list. */
  quinn: { name: 'quinn', password: 'quinn-e2e-password', role: 'manager' },
  /** Closes the site after looking at who would be locked out, and reopens it with one click. */
  sara: { name: 'sara', password: 'sara-e2e-password', role: 'manager' },
  /** Is signed in when sara closes the site. */
  tom: { name: 'tom', password: 'tom-e2e-password', role: 'member' },
  /** Reads a document while the mode changes under her (e2e/banner.spec.ts). */
  iris: { name: 'iris', password: 'iris-e2e-password', role: 'member' },
  /** The maintainer of the pages' stories: switches by the API and looks at every page (banner, accessibility). */
  jon: { name: 'jon', password: 'jon-e2e-password', role: 'manager' },
  /** Opens an edit form by its address during Concurrent maintenance. */
  kim: { name: 'kim', password: 'kim-e2e-password', role: 'member' },
  /** Saves during Concurrent maintenance and copies her kept text. */
  lena: { name: 'lena', password: 'lena-e2e-password', role: 'member' },
  /** Signs in from the control panel's sign-in link and from the home page. */
  mona: { name: 'mona', password: 'mona-e2e-password', role: 'manager' },
  /** Signs in from a document she was reading. */
  sam: { name: 'sam', password: 'sam-e2e-password', role: 'member' },
  /** The member of the accessibility check. */
  rafa: { name: 'rafa', password: 'rafa-e2e-password', role: 'member' },
  /** Whose password the accessibility check resets, to look at the reset pages (never signs in). */
  vera: { name: 'vera', password: 'vera-e2e-password', role: 'member' },
  /** The emergency user from the access file: may always change the mode, and takes over. */
  rescue: { name: 'rescue', password: 'rescue-e2e-password', role: 'emergency' },
} as const satisfies Record<string, TestUser>
