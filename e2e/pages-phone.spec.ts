import { expect, test, type Page } from '@playwright/test'
import { users } from './fixtures.js'
import { backToNormal, basicCredentials, minutesFromNow, setMode, uniqueSuffix } from './steps.js'

const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true }

test.afterEach(async ({ request }) => {
  await backToNormal(request)
})

/** Nothing on the page is wider than the phone: no sideways scrolling, and `what` is all on screen. */
async function expectFits (page: Page, what: Parameters<Page['getByRole']>, label: string): Promise<void> {
  expect(await page.evaluate<number>('document.documentElement.scrollWidth'), label).toBeLessThanOrEqual(PHONE.viewport.width)
  const box = await page.getByRole(...what).first().boundingBox()
  expect(box, label).not.toBeNull()
  expect(box!.x, label).toBeGreaterThanOrEqual(0)
  expect(box!.x + box!.width, label).toBeLessThanOrEqual(PHONE.viewport.width)
}

test('on a phone, the banner, the edit form, the "not saved" message, search pages and the closed page all fit the screen', async ({ browser, request }) => {
  const suffix = uniqueSuffix()
  const slug = `phone-pages-${suffix}`
  const created = await request.put(`/api/docs/${slug}`, { headers: { authorization: basicCredentials(users.jon) }, data: { title: `Fender lines ${suffix}`, body: 'Two fender lines per side.' } })
  expect(created.status()).toBe(201)
  await setMode(request, users.jon, 'concurrent', { reason: `Rebuilding the catalog after the disk was replaced ${suffix}`, until: minutesFromNow(75) })

  const context = await browser.newContext({ ...PHONE, extraHTTPHeaders: { authorization: basicCredentials(users.kim) } })
  const kim = await context.newPage()
  await kim.goto(`/docs/${slug}`)
  await expect(kim.locator('#maintenance-banner')).toContainText('(in 1 hour')
  await expectFits(kim, ['status'], 'document page with the banner')
  await expectFits(kim, ['link', { name: 'Edit' }], 'document page with the banner')

  await kim.goto(`/docs/${slug}/edit`)
  await expectFits(kim, ['button', { name: 'Delete this document' }], 'edit form')
  await kim.getByRole('button', { name: 'Try to save' }).click()
  await expect(kim.getByRole('heading', { name: 'Not saved' })).toBeVisible()
  await expectFits(kim, ['alert'], 'not-saved page')
  await expectFits(kim, ['button', { name: 'Copy the text' }], 'not-saved page')

  await kim.goto('/search?q=specification&page=3')
  await expectFits(kim, ['navigation', { name: 'Pages of results' }], 'search page 3')
  await expectFits(kim, ['list'], 'search page 3')

  await setMode(request, users.jon, 'exclusive', { reason: `Restoring a backup ${suffix}` })
  const visitor = await (await browser.newContext(PHONE)).newPage()
  await visitor.goto('/')
  await expect(visitor.getByRole('heading', { level: 1, name: 'Closed for maintenance' })).toBeVisible()
  await expectFits(visitor, ['link', { name: 'Sign in' }], 'closed page')
  await visitor.context().close()
  await context.close()
})
