import { expect, test } from '@playwright/test'
import { users } from './fixtures.js'

test('a wrong password is refused', async ({ page }) => {
  await page.goto('/')
  await page.getByRole('link', { name: 'Sign in' }).click()
  await page.getByLabel('User name').fill(users.cleo.name)
  await page.getByLabel('Password').fill('not-cleos-password')
  await page.getByRole('button', { name: 'Sign in' }).click()

  await expect(page.getByRole('alert')).toHaveText('Wrong user name or password.')
  await expect(page.getByRole('heading', { level: 1, name: 'Sign in' })).toBeVisible()
  await expect(page.getByText('Signed in as')).toHaveCount(0)
  await expect(page.getByRole('link', { name: 'New document' })).toHaveCount(0)
  await expect(page.getByLabel('User name')).toHaveValue(users.cleo.name)
  await expect(page.getByLabel('Password')).toHaveValue('')

  await page.getByLabel('Password').fill(users.cleo.password)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await expect(page.getByText(`Signed in as ${users.cleo.name}`)).toBeVisible()
  await expect(page.getByRole('heading', { level: 1, name: 'The catalog' })).toBeVisible()
  await expect(page.getByRole('link', { name: 'New document' })).toBeVisible()
})
