import { expect, test } from '@playwright/test'
import { users } from './fixtures.js'
import { backToNormal, signIn, switchMode, uniqueSuffix, writeDocument } from './steps.js'

test.afterEach(async ({ request }) => {
  await backToNormal(request)
})

test('Manager toggles maintenance in the browser', async ({ browser, page: manager }) => {
  const suffix = uniqueSuffix()
  const word = `gudgeon${suffix}`
  const title = `Rudder fittings ${suffix}`
  const reason = `Moving the catalog to the new disk ${suffix}`
  const firstText = `The rudder hangs on two bronze pintles.\n\nEach ${word} is greased in spring.`
  const changedText = `${firstText}\n\nCheck the pintles for wear every autumn.`

  // The manager signs in and opens the control panel: the site is normal.
  await manager.goto('/')
  await signIn(manager, users.maria)
  await manager.getByRole('link', { name: 'Manage' }).click()
  await expect(manager.getByRole('heading', { level: 1, name: 'Control panel' })).toBeVisible()
  await expect(manager.getByTestId('current-mode')).toHaveText('Normal')

  // A member writes a document, opens its edit form and starts typing a change.
  const memberContext = await browser.newContext()
  const member = await memberContext.newPage()
  await member.goto('/')
  await signIn(member, users.dora)
  await writeDocument(member, { title, text: firstText })
  await member.getByRole('link', { name: 'Edit' }).click()
  await expect(member.getByRole('heading', { level: 1, name: 'Edit document' })).toBeVisible()
  await member.getByLabel('Text').fill(changedText)
  const banner = member.locator('#maintenance-banner')
  await expect(banner).toBeHidden()

  // The manager switches to read-only maintenance and becomes its maintainer.
  await switchMode(manager, 'Concurrent (read-only)', reason)
  await expect(manager.getByTestId('maintainer')).toHaveText(users.maria.name)

  // The member's open page learns of it without a reload (server-sent events).
  await expect(banner).toBeVisible()
  await expect(banner).toContainText(`Concurrent (read-only) maintenance: ${reason}`)
  await expect(banner).toContainText('You can read and search, but changes cannot be saved until it ends.')
  await expect(member.getByLabel('Text')).toHaveValue(changedText)

  // Saving is refused, and the member gets back what they submitted.
  await member.getByRole('button', { name: 'Save' }).click()
  const notSaved = member.getByTestId('not-saved')
  await expect(notSaved).toBeVisible()
  await expect(notSaved).toHaveRole('alert')
  await expect(notSaved).toContainText('Not saved')
  await expect(notSaved).toContainText('The site is in Concurrent (read-only) maintenance, so changes cannot be saved until it ends.')
  await expect(notSaved).toContainText('Your text is still below, exactly as you typed it.')
  await expect(member.getByLabel('Title', { exact: true })).toHaveValue(title)
  await expect(member.getByLabel('Text')).toHaveValue(changedText)

  // A visitor keeps reading and searching, and sees why nothing changes.
  const visitorContext = await browser.newContext()
  const visitor = await visitorContext.newPage()
  await visitor.goto('/')
  await expect(visitor.locator('#maintenance-banner')).toContainText(reason)
  await visitor.getByLabel('Search the catalog').fill(word)
  await visitor.getByRole('button', { name: 'Search' }).click()
  await expect(visitor.getByRole('status').filter({ hasText: 'matches' })).toHaveText(`1 document matches “${word}”.`)
  await visitor.getByRole('link', { name: title }).click()
  await expect(visitor.getByRole('heading', { level: 1, name: title })).toBeVisible()
  await expect(visitor.getByText(`Each ${word} is greased in spring.`)).toBeVisible()
  await expect(visitor.getByText('Check the pintles for wear every autumn.')).toHaveCount(0)

  // The manager ends the maintenance; the member's page follows.
  await switchMode(manager, 'Normal')
  await expect(manager.getByTestId('maintainer')).toHaveText('—')
  await expect(banner).toBeHidden()

  // The member submits the same form again, and now it is saved.
  await expect(member.getByLabel('Text')).toHaveValue(changedText)
  await member.getByRole('button', { name: 'Save' }).click()
  await expect(member.getByRole('status').filter({ hasText: 'Saved.' })).toHaveText('Saved.')
  await expect(member.getByRole('heading', { level: 1, name: title })).toBeVisible()
  await expect(member.getByText('Check the pintles for wear every autumn.')).toBeVisible()
  await expect(member.getByText(`Version 2 · last changed by ${users.dora.name}`)).toBeVisible()

  await visitor.reload()
  await expect(visitor.getByText('Check the pintles for wear every autumn.')).toBeVisible()
  await visitorContext.close()
  await memberContext.close()
})
