import { expect, test } from '@playwright/test'
import { users } from './fixtures.js'
import { backToNormal, setMode, signedInAs, uniqueSuffix, writeDocument } from './steps.js'

test.afterEach(async ({ request }) => {
  await backToNormal(request)
})

test('a member who opens the edit form by its address in Concurrent mode sees Delete off with the reason, a Save that says it will be refused, and New document shown as off', async ({ browser, request }) => {
  const title = `Winch servicing ${uniqueSuffix()}`
  const kimContext = await browser.newContext(signedInAs(users.kim))
  const kim = await kimContext.newPage()
  await kim.goto('/')
  await writeDocument(kim, { title, text: 'Grease the pawls, not the brake band.' })
  const editAddress = `${new URL(kim.url()).pathname}/edit`

  await setMode(request, users.jon, 'concurrent', { reason: 'Moving the database' })
  await kim.goto(editAddress)
  await expect(kim.getByRole('heading', { level: 1, name: 'Edit document' })).toBeVisible()

  const remove = kim.getByRole('button', { name: 'Delete this document' })
  await expect(remove).toBeDisabled()
  await expect(remove).toHaveAccessibleDescription('Deleting is off until the maintenance ends.')
  await expect(kim.getByText('Deleting is off until the maintenance ends.')).toBeVisible()

  const save = kim.getByRole('button', { name: 'Try to save' })
  await expect(save).toBeEnabled()
  await expect(save).toHaveAccessibleDescription(/^Saving is off until the maintenance ends\. Trying keeps your text on this page/)

  const newDocument = kim.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'New document' })
  await expect(newDocument).toHaveAttribute('aria-disabled', 'true')
  await expect(newDocument).toHaveAccessibleDescription('off during maintenance')
  await expect(kim.getByText('off during maintenance')).toBeVisible()
  await expect(newDocument).toHaveCSS('text-decoration-line', 'none')

  // The maintenance ends while the form is open: everything is back, without a reload.
  await setMode(request, users.jon, 'normal')
  await expect(remove).toBeEnabled()
  await expect(kim.getByRole('button', { name: 'Save', exact: true })).toBeVisible()
  await expect(newDocument).not.toHaveAttribute('aria-disabled')
  await expect(kim.getByText('off during maintenance')).toBeHidden()
  await kimContext.close()
})
