import { expect, test } from '@playwright/test'
import { users } from './fixtures.js'
import { signIn, uniqueSuffix, writeDocument } from './steps.js'

const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 3, isMobile: true, hasTouch: true }

test('a visitor reads a document on a phone without scrolling sideways', async ({ browser, page }) => {
  const title = `Specification of the extra-long galvanised mooring-ring bracket ${uniqueSuffix()}`
  await page.goto('/')
  await signIn(page, users.ann)
  await writeDocument(page, {
    title,
    text: [
      'Fits the Kantenschutzwinkelverbindungsbeschlag rails; see https://example.com/catalog/fittings/mooring-ring-bracket/specification-sheet-revision-14.pdf for the drawing.',
      '',
      '| Part | Material | Finish | Size | Weight | Stock |',
      '| --- | --- | --- | --- | --- | --- |',
      '| Q-00042-LONG-RING | galvanised steel | hot-dip galvanised | 120 × 80 mm | 640 g | north warehouse |',
      '',
      '```',
      'order --part Q-00042-LONG-RING --finish hot-dip-galvanised --quantity 12 --deliver-to north-warehouse',
      '```',
    ].join('\n'),
  })

  const phoneContext = await browser.newContext(PHONE)
  const phone = await phoneContext.newPage()
  await phone.goto('/')
  await phone.getByRole('link', { name: title }).click()
  await expect(phone.getByRole('heading', { level: 1, name: title })).toBeVisible()
  await expect(phone.getByRole('table')).toBeVisible()

  const windowWidth = await phone.evaluate<number>('window.innerWidth')
  const pageWidth = await phone.evaluate<number>('document.documentElement.scrollWidth')
  expect(windowWidth).toBe(PHONE.viewport.width)
  expect(pageWidth).toBeLessThanOrEqual(windowWidth)
  await phoneContext.close()
})
