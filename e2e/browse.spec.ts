import { expect, test } from '@playwright/test'
import { users } from './fixtures.js'
import { signIn, uniqueSuffix, writeDocument } from './steps.js'

test('a visitor browses and searches', async ({ browser, page }) => {
  const word = `lantern${uniqueSuffix()}`
  const title = `Deck ${word} bracket`
  const annContext = await browser.newContext()
  const ann = await annContext.newPage()
  await ann.goto('/')
  await signIn(ann, users.ann)
  await writeDocument(ann, { title, text: `A galvanised bracket that holds a ${word} on deck.\n\nIt takes two M6 bolts.` })
  await annContext.close()

  await page.goto('/')
  await expect(page.getByRole('heading', { level: 1, name: 'The catalog' })).toBeVisible()
  await expect(page.getByRole('heading', { level: 2, name: 'Recently changed' })).toBeVisible()
  const recentEntry = page.getByRole('listitem').filter({ has: page.getByRole('link', { name: title }) })
  await expect(recentEntry).toContainText(`by ${users.ann.name}`)

  await recentEntry.getByRole('link', { name: title }).click()
  await expect(page.getByRole('heading', { level: 1, name: title })).toBeVisible()
  await expect(page.getByText('It takes two M6 bolts.')).toBeVisible()
  await expect(page.getByRole('link', { name: 'Edit' })).toHaveCount(0)

  await page.getByRole('link', { name: 'Quiesce' }).click()
  await page.getByLabel('Search the catalog').fill(word)
  await page.getByRole('button', { name: 'Search' }).click()
  await expect(page.getByRole('status')).toHaveText(`1 document matches “${word}”.`)
  const hit = page.getByRole('listitem').filter({ has: page.getByRole('link', { name: title }) })
  await expect(hit.locator('mark')).toHaveText([word])

  await hit.getByRole('link', { name: title }).click()
  await expect(page.getByRole('heading', { level: 1, name: title })).toBeVisible()
})
