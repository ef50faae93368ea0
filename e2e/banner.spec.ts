import { expect, test } from '@playwright/test'
import { users } from './fixtures.js'
import { backToNormal, minutesFromNow, setMode, signedInAs, uniqueSuffix, writeDocument } from './steps.js'

test.afterEach(async ({ request }) => {
  await backToNormal(request)
})

test('a member\'s open page follows the mode: the banner names it, says what it means for her, and counts down to its end', async ({ browser, request }) => {
  const suffix = uniqueSuffix()
  const title = `Tiller lashing ${suffix}`
  const reason = `Replacing the catalog disk ${suffix}`
  const irisContext = await browser.newContext(signedInAs(users.iris))
  const iris = await irisContext.newPage()
  await iris.goto('/')
  await writeDocument(iris, { title, text: 'Lash the tiller amidships before you leave the boat.' })
  const banner = iris.locator('#maintenance-banner')
  await expect(banner).toBeHidden()
  const edit = iris.getByRole('link', { name: 'Edit' })
  await expect(edit).not.toHaveAttribute('aria-disabled')

  // Jon switches to Concurrent with an expected end 90 minutes away; her page learns it by itself.
  const until = minutesFromNow(90)
  await setMode(request, users.jon, 'concurrent', { reason, until })
  await expect(banner).toBeVisible()
  await expect(banner).toHaveAttribute('role', 'status')
  await expect(banner).toContainText(`Concurrent (read-only) maintenance: ${reason}`)
  await expect(banner).toContainText('You can read and search, but changes cannot be saved until it ends.')
  // The exact end stays as the server wrote it; the script adds the time left beside it.
  await expect(banner.locator('time[data-countdown]')).toHaveText(`${until.slice(0, 10)} ${until.slice(11, 16)} UTC`)
  await expect(banner).toContainText(/Expected to end \d{4}-\d\d-\d\d \d\d:\d\d UTC \(in 1 hour (29|30) minutes\)\./)
  await expect(banner).not.toContainText('Read-only maintenance')
  await expect(edit).toHaveAttribute('aria-disabled', 'true')
  await expect(edit).toHaveAccessibleDescription('Editing is off until the maintenance ends.')
  await expect(iris.getByText('Editing is off until the maintenance ends.')).toBeVisible()

  // Exclusive: the same page now says the site is closed, not that reading works.
  await setMode(request, users.jon, 'exclusive', { reason, until })
  await expect(banner).toContainText(`Exclusive maintenance: ${reason}`)
  await expect(banner).toContainText('The site is closed to everyone except its maintainer and the emergency user.')
  await expect(banner).not.toContainText('read and search')

  // Back to normal: the banner goes, Edit works again.
  await setMode(request, users.jon, 'normal')
  await expect(banner).toBeHidden()
  await expect(edit).not.toHaveAttribute('aria-disabled')
  await expect(iris.getByText('Editing is off until the maintenance ends.')).toBeHidden()
  await irisContext.close()
})

test('the maintainer\'s banner says that his changes are saved while everyone else only reads', async ({ browser, request }) => {
  const reason = `Checking the backups ${uniqueSuffix()}`
  const jonContext = await browser.newContext(signedInAs(users.jon))
  const jon = await jonContext.newPage()
  await jon.goto('/docs')
  await setMode(request, users.jon, 'concurrent', { reason })
  const banner = jon.locator('#maintenance-banner')
  await expect(banner).toContainText(`Concurrent (read-only) maintenance: ${reason}`)
  await expect(banner).toContainText('You are the maintainer: your changes are saved; everyone else can only read.')
  // No expected end: no countdown.
  await expect(banner.locator('time[data-countdown]')).toHaveCount(0)
  await expect(jon.getByRole('link', { name: 'New document' })).not.toHaveAttribute('aria-disabled')

  await setMode(request, users.jon, 'exclusive', { reason })
  await expect(banner).toContainText('You are the maintainer: you can use the site and your changes are saved; it is closed to everyone else.')
  await jonContext.close()
})

test('a visitor finds the site closed: one page that says why and until when, nothing that leads to another closed page, and it opens by itself', async ({ page, request }) => {
  const reason = `Restoring last night's backup ${uniqueSuffix()}`
  const until = minutesFromNow(45)
  await setMode(request, users.jon, 'exclusive', { reason, until })

  const response = await page.goto('/docs')
  expect(response?.status()).toBe(503)
  await expect(page.getByRole('heading', { level: 1, name: 'Closed for maintenance' })).toBeVisible()
  const main = page.getByRole('main')
  await expect(main).toContainText('Exclusive maintenance')
  await expect(main).toContainText('The site is closed to everyone except its maintainer and the emergency user.')
  await expect(main).toContainText(reason)
  await expect(main).toContainText(/Expected end\s*\d{4}-\d\d-\d\d \d\d:\d\d UTC \(in (44|45) minutes\)/)
  // Said once: no banner repeating the page, and nothing about reading and searching.
  await expect(page.locator('#maintenance-banner')).toBeHidden()
  await expect(page.getByText('reading and searching', { exact: false })).toHaveCount(0)
  await expect(page.getByText('Changes cannot be saved')).toHaveCount(0)
  // Nothing that only leads to another 503.
  await expect(page.getByRole('link', { name: 'Documents' })).toHaveCount(0)
  await expect(page.getByRole('searchbox')).toHaveCount(0)
  await expect(page.getByRole('link', { name: 'Quiesce' })).toHaveCount(0)
  await expect(main.getByRole('link', { name: 'Sign in' })).toHaveAttribute('href', '/login?next=%2Fdocs')

  // The maintainer ends it: the page reloads by itself into the open site.
  await setMode(request, users.jon, 'normal')
  await expect(page.getByRole('heading', { level: 1, name: 'All documents' })).toBeVisible({ timeout: 15_000 })
  await expect(page.getByRole('link', { name: 'Documents' })).toBeVisible()
})
