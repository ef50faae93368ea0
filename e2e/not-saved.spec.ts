import { expect, test } from '@playwright/test'
import { users } from './fixtures.js'
import { backToNormal, minutesFromNow, setMode, signedInAs, uniqueSuffix, writeDocument } from './steps.js'

test.afterEach(async ({ request }) => {
  await backToNormal(request)
})

test('a save refused by maintenance says once that it was not saved, why and when to try again, and the kept text can be copied', async ({ browser, request }) => {
  const suffix = uniqueSuffix()
  const title = `Anchor chain ${suffix}`
  const typed = `Mark the chain every 5 m.\n\nPaint the 10 m mark red (${suffix}).`
  const lenaContext = await browser.newContext({ ...signedInAs(users.lena), permissions: ['clipboard-read', 'clipboard-write'] })
  const lena = await lenaContext.newPage()
  await lena.goto('/')
  await writeDocument(lena, { title, text: 'Mark the chain every 5 m.' })
  await lena.getByRole('link', { name: 'Edit' }).click()

  const until = minutesFromNow(30)
  await setMode(request, users.jon, 'concurrent', { reason: 'Rebuilding the catalog', until })
  await lena.getByLabel('Text').fill(typed)
  await lena.getByRole('button', { name: 'Try to save' }).click()

  // One message, not three: no banner, no second note.
  const notSaved = lena.getByRole('alert')
  await expect(notSaved).toHaveCount(1)
  await expect(notSaved.getByRole('heading', { name: 'Not saved' })).toBeVisible()
  await expect(notSaved).toContainText('The site is in Concurrent (read-only) maintenance, so changes cannot be saved until it ends. The reason given: Rebuilding the catalog.')
  await expect(notSaved).toContainText(/Try again after \d{4}-\d\d-\d\d \d\d:\d\d UTC \(in (29|30) minutes\), when the maintenance is expected to end\./)
  await expect(notSaved).toContainText('Your text is still below, exactly as you typed it.')
  await expect(lena.locator('#maintenance-banner')).toBeHidden()
  await expect(lena.getByText('Saving is off until the maintenance ends.')).toHaveCount(0)
  await expect(lena.getByLabel('Text')).toHaveValue(typed)
  await expect(notSaved.getByText('The maintenance is over')).toBeHidden()

  // The copy button is a real button; the text lands on the clipboard.
  await notSaved.getByRole('button', { name: 'Copy the text' }).click()
  await expect(notSaved.getByRole('status')).toHaveText('Copied.')
  expect(await lena.evaluate<string>('navigator.clipboard.readText()')).toBe(typed)

  // When the maintenance ends, the page says so, and the same Save goes through.
  await setMode(request, users.jon, 'normal')
  await expect(notSaved).toContainText('The maintenance is over: you can save now.')
  await lena.getByRole('button', { name: 'Save', exact: true }).click()
  await expect(lena.getByRole('status')).toHaveText('Saved.')
  await expect(lena.getByText(`Paint the 10 m mark red (${suffix}).`)).toBeVisible()
  await lenaContext.close()
})

test('without a clipboard the copy button selects the kept text and says how to copy it', async ({ browser, request }) => {
  const typed = `Coil the halyards clockwise ${uniqueSuffix()}.`
  // A site served over plain HTTP has no clipboard API: the script falls back to a selection.
  const context = await browser.newContext(signedInAs(users.lena))
  await context.addInitScript('Object.defineProperty(navigator, "clipboard", { value: undefined }); document.execCommand = () => false')
  const lena = await context.newPage()
  await setMode(request, users.jon, 'concurrent')
  await lena.goto('/docs/new')
  await lena.getByLabel('Title', { exact: true }).fill('Halyards')
  await lena.getByLabel('Text').fill(typed)
  await lena.getByRole('button', { name: 'Try to save' }).click()
  await expect(lena.getByRole('alert')).toContainText('No end time was given; try again in about 5 minutes.')

  await lena.getByRole('button', { name: 'Copy the text' }).click()
  await expect(lena.getByRole('alert').getByRole('status')).toHaveText('The text is selected: press Ctrl+C (⌘C on a Mac) to copy it.')
  const text = lena.getByLabel('Text')
  await expect(text).toBeFocused()
  await expect(text).toHaveJSProperty('selectionStart', 0)
  await expect(text).toHaveJSProperty('selectionEnd', typed.length)
  await context.close()
})
