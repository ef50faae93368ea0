import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { expect, test } from '@playwright/test'
import { hashPassword } from '../app/auth/passwords.js'
import { insertUser } from '../app/auth/users.js'
import { openDatabase } from '../app/db/database.js'
import { startInstance, type Instance } from '../test/helpers/cluster.js'
import { PostgresServer } from '../test/helpers/postgres-server.js'
import { basicCredentials, signIn, switchMode, uniqueSuffix } from './steps.js'
import type { TestUser } from './fixtures.js'

/**
 * Three instances of one site in Chromium (issue 9, item 4): A and B on a PostgreSQL primary,
 * reading through its hot standby (QUIESCE_REPLICA_URLS), and C on the standby itself (a
 * read-only copy that serves by itself). The cluster is this story's
 * own: a throwaway primary + standby (test/helpers/postgres-server.ts) and three
 * `quiesce serve` processes, not the shared e2e server.
 */
const maria: TestUser = { name: 'maria', password: 'maria-cluster-password', role: 'manager' }
const ann: TestUser = { name: 'ann', password: 'ann-cluster-password', role: 'member' }

let primary: PostgresServer
let standby: PostgresServer
let dataDir: string
const instances: Instance[] = []

test.beforeAll(async () => {
  test.setTimeout(180_000)
  dataDir = mkdtempSync(path.join(tmpdir(), 'quiesce-e2e-cluster-'))
  primary = await PostgresServer.create({ max_connections: 100 })
  const site = { url: { kind: 'postgres' as const, url: primary.url() }, dataDir, drop: async () => {} }
  const database = await openDatabase(site.url)
  for (const user of [maria, ann]) await insertUser(database.writer, { username: user.name, passwordHash: await hashPassword(user.password), role: user.role === 'manager' ? 'manager' : 'member' })
  await database.destroy()
  standby = await primary.createStandby()
  const readsOnReplica = { env: { QUIESCE_REPLICA_URLS: standby.url() } }
  instances.push(await startInstance(site, 'e2e-a', readsOnReplica), await startInstance(site, 'e2e-b', readsOnReplica))
  instances.push(await startInstance({ ...site, url: { kind: 'postgres', url: standby.url() } }, 'e2e-c-standby', { env: { QUIESCE_PRIMARY_ORIGIN: instances[0]!.url, QUIESCE_PRIMARY_DATABASE_URL: primary.url() } }))
})

test.afterAll(async () => {
  await Promise.all(instances.map((instance) => instance.stop()))
  await standby?.destroy()
  await primary?.destroy()
  rmSync(dataDir, { recursive: true, force: true })
})

test('a switch on one instance reaches the others and the read-only copy live; a save refused on B goes through after it, and the copy shows it', async ({ browser, request }) => {
  test.setTimeout(120_000)
  const [a, b, c] = instances as [Instance, Instance, Instance]
  const suffix = uniqueSuffix()
  const slug = `winch-${suffix}`
  const saved = await request.put(`${a.url}/api/docs/${slug}`, { headers: { authorization: basicCredentials(ann) }, data: { title: `Winch ${suffix}`, body: 'Grease the pawls.' } })
  expect(saved.status()).toBe(201)

  // Maria runs the control panel on A; Ann edits on B; a visitor reads the copy on C.
  const mariaPage = await (await browser.newContext({ baseURL: a.url })).newPage()
  await mariaPage.goto('/')
  await signIn(mariaPage, maria)
  await mariaPage.goto('/manage')
  // The panel shows each instance's database: the primary, reading from the replica; and C,
  // which registers in the primary's registry (QUIESCE_PRIMARY_DATABASE_URL), on the standby.
  const instanceRows = mariaPage.getByRole('region', { name: 'Instances' }).getByRole('row')
  await expect(instanceRows.filter({ hasText: 'e2e-b' })).toContainText(/PostgreSQL primary; reads on replica-1 \(\d+ ms, \d+ bytes behind\)/, { timeout: 10_000 })
  await expect(instanceRows.filter({ hasText: 'e2e-c-standby' })).toContainText('PostgreSQL standby (a read-only copy)', { timeout: 10_000 })
  // A visitor's page on B is read from the replica.
  await expect.poll(async () => (await request.get(`${b.url}/docs/${slug}`)).headers()['quiesce-replica'], { timeout: 10_000 }).toBe('replica-1')
  const annPage = await (await browser.newContext({ baseURL: b.url })).newPage()
  await annPage.goto('/')
  await signIn(annPage, ann)
  await annPage.goto(`/docs/${slug}/edit`)
  const visitor = await (await browser.newContext({ baseURL: c.url })).newPage()
  await expect.poll(async () => (await visitor.goto(`/docs/${slug}`))?.status(), { timeout: 10_000 }).toBe(200)
  await expect(visitor.getByRole('note').filter({ hasText: 'This is a read-only copy of the site.' })).toBeVisible()
  await expect(visitor.getByRole('link', { name: new URL(a.url).host })).toHaveAttribute('href', a.url)

  await switchMode(mariaPage, 'Concurrent (read-only)', `Reindex ${suffix}`)
  // Without a reload: B's page and the copy's page follow their instance's event stream.
  await expect(annPage.locator('#maintenance-banner')).toContainText(`Concurrent (read-only) maintenance: Reindex ${suffix}`)
  await expect(visitor.locator('#maintenance-banner')).toContainText(`Concurrent (read-only) maintenance: Reindex ${suffix}`)
  // Every instance, the copy included, applied the switch: the panel says so live.
  const { version } = await (await request.get(`${a.url}/healthz`)).json() as { version: number }
  for (const id of ['e2e-a', 'e2e-b', 'e2e-c-standby']) await expect(instanceRows.filter({ hasText: id })).toContainText(`${version} ✓ applied`, { timeout: 10_000 })

  const typed = `Grease the pawls, not the brake band (${suffix}).`
  await annPage.getByLabel('Text').fill(typed)
  await annPage.getByRole('button', { name: 'Try to save' }).click()
  await expect(annPage.getByRole('alert').getByRole('heading', { name: 'Not saved' })).toBeVisible()
  await expect(annPage.getByLabel('Text')).toHaveValue(typed)

  await switchMode(mariaPage, 'Normal')
  await expect(annPage.getByRole('alert')).toContainText('The maintenance is over: you can save now.')
  await annPage.getByRole('button', { name: 'Save', exact: true }).click()
  await expect(annPage.getByRole('status')).toHaveText('Saved.')
  // Ann reads her own save at once, whichever database serves the page.
  await expect(annPage.getByText(typed)).toBeVisible()
  await expect(visitor.locator('#maintenance-banner')).toBeHidden()

  // The copy replays the save; a visitor who reloads sees it.
  await expect.poll(async () => {
    await visitor.reload()
    return visitor.getByText(typed).count()
  }, { timeout: 10_000 }).toBe(1)
  // And the copy says why nobody signs in there.
  await visitor.getByRole('link', { name: 'Sign in' }).click()
  await expect(visitor.getByTestId('sign-in-not-here')).toContainText('Signing in is not possible on this read-only copy')
  await expect(visitor.getByLabel('Password')).toHaveCount(0)
})
