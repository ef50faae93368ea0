import { expect, test } from '@playwright/test'
import { users } from './fixtures.js'
import { uniqueSuffix, writeDocument, signedInAs } from './steps.js'

test('a manager whose session ended on the control panel signs in from it and is back on it; from the home page she lands on it too', async ({ browser }) => {
  const context = await browser.newContext()
  const mona = await context.newPage()
  await mona.goto('/manage')
  await expect(mona.getByRole('heading', { level: 1, name: 'Unauthorized' })).toBeVisible()
  await mona.getByRole('main').getByRole('link', { name: 'Sign in' }).click()
  await mona.getByLabel('User name').fill(users.mona.name)
  await mona.getByLabel('Password').fill(users.mona.password)
  await mona.getByRole('button', { name: 'Sign in' }).click()
  await expect(mona).toHaveURL(/\/manage$/)
  await expect(mona.getByRole('heading', { level: 1, name: 'Control panel' })).toBeVisible()

  await mona.getByRole('button', { name: 'Sign out' }).click()
  await expect(mona.getByRole('heading', { level: 1, name: 'The catalog' })).toBeVisible()
  await mona.getByRole('link', { name: 'Sign in' }).click()
  await mona.getByLabel('User name').fill(users.mona.name)
  await mona.getByLabel('Password').fill(users.mona.password)
  await mona.getByRole('button', { name: 'Sign in' }).click()
  await expect(mona.getByRole('heading', { level: 1, name: 'Control panel' })).toBeVisible()
  await context.close()
})

test('a member reading a document signs in from the header and is back on that document', async ({ browser, page: sam }) => {
  const title = `Bilge pump diaphragm ${uniqueSuffix()}`
  const authorContext = await browser.newContext(signedInAs(users.iris))
  const author = await authorContext.newPage()
  await author.goto('/')
  await writeDocument(author, { title, text: 'Carry a spare diaphragm and the two clamps.' })
  const address = new URL(author.url()).pathname
  await authorContext.close()

  await sam.goto(address)
  await sam.getByRole('link', { name: 'Sign in' }).click()
  await sam.getByLabel('User name').fill(users.sam.name)
  await sam.getByLabel('Password').fill(users.sam.password)
  await sam.getByRole('button', { name: 'Sign in' }).click()
  await expect(sam.getByText(`Signed in as ${users.sam.name}`)).toBeVisible()
  await expect(sam).toHaveURL(new RegExp(`${address}$`))
  await expect(sam.getByRole('heading', { level: 1, name: title })).toBeVisible()
  await expect(sam.getByRole('link', { name: 'Edit' })).toBeVisible()
})
