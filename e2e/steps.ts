import { expect, type Page } from '@playwright/test'
import type { TestUser } from './fixtures.js'

/** Signs in through the form linked from the page header and checks the header greets the person. */
export async function signIn (page: Page, user: TestUser): Promise<void> {
  await page.getByRole('link', { name: 'Sign in' }).click()
  await page.getByLabel('User name').fill(user.name)
  await page.getByLabel('Password').fill(user.password)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await expect(page.getByText(`Signed in as ${user.name}`)).toBeVisible()
}

/** Writes a new document from the header's "New document" link and checks it was saved. */
export async function writeDocument (page: Page, document: { title: string, text: string }): Promise<void> {
  await page.getByRole('link', { name: 'New document' }).click()
  await page.getByLabel('Title', { exact: true }).fill(document.title)
  await page.getByLabel('Text').fill(document.text)
  await page.getByRole('button', { name: 'Save' }).click()
  await expect(page.getByRole('status')).toHaveText('Saved.')
  await expect(page.getByRole('heading', { level: 1, name: document.title })).toBeVisible()
}

/** Makes titles and words that no other document has, so each story finds exactly its own. */
export function uniqueSuffix (): string {
  return Date.now().toString(36)
}
