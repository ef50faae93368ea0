import { expect, test, type Page } from '@playwright/test'
import { users } from './fixtures.js'
import { backToNormal, basicCredentials, signIn, switchMode, uniqueSuffix } from './steps.js'

test.afterEach(async ({ request }) => {
  await backToNormal(request)
})

async function expectMaintenancePage (page: Page, reason: string): Promise<void> {
  await expect(page.getByRole('heading', { level: 1, name: 'Closed for maintenance' })).toBeVisible()
  await expect(page.getByRole('main')).toContainText(reason)
}

test('Emergency user override', async ({ browser, page: maria }) => {
  const reason = `Restoring the catalog from last night's backup ${uniqueSuffix()}`

  // Manager A (maria) and manager B (felix) are signed in; felix can use the control panel.
  await maria.goto('/')
  await signIn(maria, users.maria)
  const felixContext = await browser.newContext()
  const felix = await felixContext.newPage()
  await felix.goto('/')
  await signIn(felix, users.felix)
  await felix.getByRole('link', { name: 'Manage' }).click()
  await expect(felix.getByRole('heading', { level: 1, name: 'Control panel' })).toBeVisible()

  // A member is signed in too (by HTTP Basic credentials: see the sign-in budget in steps.ts).
  const emilContext = await browser.newContext({ extraHTTPHeaders: { authorization: basicCredentials(users.emil) } })
  const emil = await emilContext.newPage()
  await emil.goto('/')
  await expect(emil.getByText(`Signed in as ${users.emil.name}`)).toBeVisible()

  // Manager A closes the site.
  await maria.getByRole('link', { name: 'Manage' }).click()
  await switchMode(maria, 'Exclusive', reason)
  await expect(maria.getByTestId('maintainer')).toHaveText(users.maria.name)

  // The member and manager B find the maintenance page wherever they go.
  await emil.goto('/')
  await expectMaintenancePage(emil, reason)
  await expect(emil.getByText(`You are signed in as ${users.emil.name}.`)).toBeVisible()
  await felix.goto('/')
  await expectMaintenancePage(felix, reason)
  await felix.goto('/manage')
  await expectMaintenancePage(felix, reason)
  await expect(felix.getByRole('heading', { name: 'Control panel' })).toHaveCount(0)

  // Manager B cannot change the mode through the API either: the change is judged by the rules
  // (the state change is open in every mode) and refused, naming the maintainer.
  const before = await felix.request.get('/api/maintenance')
  expect(before.status()).toBe(200)
  const closed = await before.json() as { mode: string, version: number, maintainer: string | null }
  expect(closed).toMatchObject({ mode: 'exclusive', reason, maintainer: users.maria.name })
  const csrfToken = await felix.locator('input[name="_csrf"]').first().inputValue()
  const refused = await felix.request.put('/api/maintenance', {
    headers: { 'x-csrf-token': csrfToken },
    data: { mode: 'normal', expectedVersion: closed.version },
  })
  expect(refused.status()).toBe(403)
  expect(await refused.json()).toMatchObject({ statusCode: 403, code: 'QUIESCE_NOT_MAINTAINER', maintainer: users.maria.name })
  const after = await (await felix.request.get('/api/maintenance')).json() as unknown
  expect(after).toMatchObject({ mode: 'exclusive', version: closed.version, maintainer: users.maria.name })

  // The emergency user signs in from the maintenance page: the login page stays open.
  const rescueContext = await browser.newContext()
  const rescue = await rescueContext.newPage()
  await rescue.goto('/')
  await expectMaintenancePage(rescue, reason)
  await rescue.getByRole('main').getByRole('link', { name: 'Sign in' }).click()
  await expect(rescue.getByRole('heading', { level: 1, name: 'Sign in' })).toBeVisible()
  await rescue.getByLabel('User name').fill(users.rescue.name)
  await rescue.getByLabel('Password').fill(users.rescue.password)
  await rescue.getByRole('button', { name: 'Sign in' }).click()
  await expect(rescue.getByText(`Signed in as ${users.rescue.name}`)).toBeVisible()

  // The emergency user opens the control panel, sees A as maintainer, and reopens the site.
  await rescue.getByRole('link', { name: 'Manage' }).click()
  await expect(rescue.getByRole('heading', { level: 1, name: 'Control panel' })).toBeVisible()
  await expect(rescue.getByTestId('current-mode')).toHaveText('Exclusive')
  await expect(rescue.getByTestId('maintainer')).toHaveText(users.maria.name)
  await switchMode(rescue, 'Normal')

  // The log records the take-over.
  await rescue.getByRole('navigation', { name: 'Control panel' }).getByRole('link', { name: 'Log' }).click()
  await expect(rescue.getByRole('heading', { level: 1, name: 'Maintenance log' })).toBeVisible()
  const takeOver = rescue.getByRole('row').filter({ hasText: `took over from ${users.maria.name}` })
  await expect(takeOver).toHaveCount(1)
  await expect(takeOver).toContainText(users.rescue.name)
  await expect(takeOver).toContainText('Exclusive → Normal')
  const refusedRow = rescue.getByRole('row').filter({ hasText: users.felix.name }).filter({ hasText: 'refused' })
  await expect(refusedRow).toHaveCount(1)
  await expect(refusedRow).toContainText(`the maintainer is ${users.maria.name}`)
  const closing = rescue.getByRole('row').filter({ hasText: 'Normal → Exclusive' }).filter({ hasText: reason })
  await expect(closing).toContainText(users.maria.name)

  // The member's maintenance page comes back by itself; manager B can browse and manage again.
  await expect(emil.getByRole('heading', { level: 1, name: 'The catalog' })).toBeVisible()
  await expect(emil.getByText(`Signed in as ${users.emil.name}`)).toBeVisible()
  await felix.goto('/manage')
  await expect(felix.getByRole('heading', { level: 1, name: 'Control panel' })).toBeVisible()
  await expect(felix.getByTestId('current-mode')).toHaveText('Normal')
  await felix.getByRole('link', { name: 'Quiesce' }).click()
  await expect(felix.getByRole('heading', { level: 1, name: 'The catalog' })).toBeVisible()

  await rescueContext.close()
  await emilContext.close()
  await felixContext.close()
})
