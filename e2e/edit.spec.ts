import { expect, test } from '@playwright/test'
import { users } from './fixtures.js'
import { uniqueSuffix } from './steps.js'

test('a member signs in, creates and edits a document and sees it saved', async ({ page }) => {
  const suffix = uniqueSuffix()
  const title = `Workshop notes ${suffix}`
  const word = `whetstone${suffix}`
  const newText = `Sharpen the chisels on the ${word} every Friday.`

  await page.goto('/')
  await page.getByRole('link', { name: 'Sign in' }).click()
  await page.getByLabel('User name').fill(users.ben.name)
  await page.getByLabel('Password').fill(users.ben.password)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await expect(page.getByText(`Signed in as ${users.ben.name}`)).toBeVisible()

  await page.getByRole('link', { name: 'New document' }).click()
  await page.getByLabel('Title', { exact: true }).fill(title)
  await page.getByLabel('Text').fill('The vice is **bolted** to the bench.\n\n- oil the screw\n- keep the jaws clean')
  await page.getByRole('button', { name: 'Save' }).click()
  await expect(page.getByRole('status')).toHaveText('Saved.')
  await expect(page.getByRole('heading', { level: 1, name: title })).toBeVisible()
  await expect(page.getByRole('strong').filter({ hasText: 'bolted' })).toBeVisible()
  await expect(page.getByRole('listitem').filter({ hasText: 'oil the screw' })).toBeVisible()
  await expect(page.getByText(`Version 1 · last changed by ${users.ben.name}`)).toBeVisible()

  await page.getByRole('link', { name: 'Edit' }).click()
  await expect(page.getByRole('heading', { level: 1, name: 'Edit document' })).toBeVisible()
  await page.getByLabel('Text').fill(`The vice is bolted to the bench.\n\n${newText}`)
  await page.getByRole('button', { name: 'Save' }).click()
  await expect(page.getByRole('status')).toHaveText('Saved.')
  await expect(page.getByText(newText)).toBeVisible()
  await expect(page.getByText('oil the screw')).toHaveCount(0)
  await expect(page.getByText(`Version 2 · last changed by ${users.ben.name}`)).toBeVisible()

  await page.getByLabel('Search documents').fill(word)
  await page.getByLabel('Search documents').press('Enter')
  const hit = page.getByRole('listitem').filter({ has: page.getByRole('link', { name: title }) })
  await expect(hit.locator('mark')).toHaveText([word])
  await hit.getByRole('link', { name: title }).click()
  await expect(page.getByText(newText)).toBeVisible()
})
