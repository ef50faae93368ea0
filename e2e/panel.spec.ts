import { expect, test } from '@playwright/test'
import { users } from './fixtures.js'
import { backToNormal, basicCredentials, signIn, uniqueSuffix } from './steps.js'

const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true }

test.afterEach(async ({ request }) => {
  await backToNormal(request)
})

test('a manager sees who will be locked out before closing the site, watches the instances, and reopens it with one click', async ({ browser, page: sara }) => {
  const reason = `Moving the database ${uniqueSuffix()}`
  // A member is signed in.
  const tomContext = await browser.newContext()
  const tom = await tomContext.newPage()
  await tom.goto('/')
  await signIn(tom, users.tom)

  await sara.goto('/')
  await signIn(sara, users.sara)
  await sara.getByRole('link', { name: 'Manage' }).click()
  const control = sara.getByRole('region', { name: 'Change the mode' })
  await control.getByRole('radio', { name: 'Exclusive', exact: true }).check()
  await control.getByLabel('Reason').fill(reason)

  // The expected end: the current time in UTC beside it, and presets from now.
  await expect(control.getByText(/^It is \d{4}-\d\d-\d\d \d\d:\d\d UTC now\./)).toBeVisible()
  const before = Date.now()
  await control.getByRole('button', { name: 'now + 15 min' }).click()
  const until = Date.parse(`${await control.getByLabel('Expected end, UTC').inputValue()}:00Z`)
  expect(until - before).toBeGreaterThanOrEqual(14 * 60_000)
  expect(until - before).toBeLessThanOrEqual(16 * 60_000 + 5_000)
  await expect(control.getByText(/^Ends \d{4}-\d\d-\d\d \d\d:\d\d UTC, in 1[56] min\.$/)).toBeVisible()
  await control.getByRole('button', { name: 'Apply' }).click()

  // The confirmation says who is signed in and will be locked out, and what is being written.
  await expect(sara.getByRole('heading', { level: 1, name: 'Close the site?' })).toBeVisible()
  const impact = sara.getByRole('region', { name: 'What it does now' })
  await expect(impact.getByRole('listitem').filter({ hasText: 'signed in and will be locked out' })).toContainText(users.tom.name)
  await expect(impact.getByRole('listitem').filter({ hasText: 'will be locked out' })).not.toContainText(users.sara.name)
  await expect(impact.getByRole('listitem').filter({ hasText: 'in flight' })).toContainText(/(No write is|\d+ writes? (is|are)) in flight/)
  await expect(impact).toContainText(reason)
  await sara.getByRole('button', { name: 'Close the site (Exclusive)' }).click()
  await expect(sara.getByRole('status').filter({ hasText: 'Done:' })).toContainText('the site is now Exclusive')
  await expect(sara.getByTestId('elapsed')).toHaveText('0 min')

  // The member is out.
  await tom.reload()
  await expect(tom.getByRole('heading', { level: 1, name: 'Closed for maintenance' })).toBeVisible()

  // The instances are read again while the panel is open, with the time of the last check.
  const instances = sara.getByRole('region', { name: 'Instances' })
  await expect(instances.getByRole('status')).toHaveText(/^Quiet: every instance enforces version \d+ and no write is in flight\.$/)
  const checked = instances.locator('time[data-checked]')
  const first = await checked.textContent()
  await expect(checked).not.toHaveText(first!, { timeout: 10_000 })
  await expect(instances).toContainText('this list updates itself every 2 seconds')
  await expect(instances.getByRole('table', { name: 'Instances' }).getByRole('row')).toHaveCount(2)
  // Each instance says what its database is, in the refreshed rows too.
  await expect(instances.getByRole('cell', { name: 'SQLite file', exact: true })).toBeVisible()

  // The recent changes show the switch; one click reopens the site.
  await expect(sara.getByRole('table', { name: 'Recent changes' }).getByRole('row').nth(1)).toContainText('Normal → Exclusive')
  await sara.getByRole('region', { name: 'Maintenance state' }).getByRole('button', { name: 'Back to Normal' }).click()
  await expect(sara.getByRole('status').filter({ hasText: 'Done:' })).toContainText('the site is now Normal')
  await expect(sara.getByRole('button', { name: 'Back to Normal' })).toHaveCount(0)
  await tom.reload()
  await expect(tom.getByText(`Signed in as ${users.tom.name}`)).toBeVisible()
  await tomContext.close()
})

test('another manager, while someone maintains the site, is told who may change it and gets no form that would be refused', async ({ browser, request }) => {
  const state = await (await request.get('/api/maintenance')).json() as { version: number }
  expect((await request.put('/api/maintenance', { headers: { authorization: basicCredentials(users.sara) }, data: { mode: 'concurrent', reason: 'sara maintains', expectedVersion: state.version } })).status()).toBe(200)
  const context = await browser.newContext({ extraHTTPHeaders: { authorization: basicCredentials(users.quinn) } })
  const quinn = await context.newPage()
  await quinn.goto('/manage')
  await expect(quinn.getByTestId('not-yours')).toHaveText(`Only ${users.sara.name} (the maintainer) or the emergency user can change the mode now. Ask ${users.sara.name}, or the emergency user if ${users.sara.name} cannot be reached.`)
  await expect(quinn.getByRole('region', { name: 'Change the mode' })).toHaveCount(0)
  await expect(quinn.getByRole('button', { name: 'Back to Normal' })).toHaveCount(0)
  await context.close()
})

test('on a phone, the control panel\'s tables read as cards: the key columns on screen, dates on one line, nothing to scroll sideways', async ({ browser, request }) => {
  const state = await (await request.get('/api/maintenance')).json() as { version: number }
  expect((await request.put('/api/maintenance', { headers: { authorization: basicCredentials(users.sara) }, data: { mode: 'concurrent', reason: 'phone check', expectedVersion: state.version } })).status()).toBe(200)
  const context = await browser.newContext({ ...PHONE, extraHTTPHeaders: { authorization: basicCredentials(users.sara) } })
  const phone = await context.newPage()
  for (const path of ['/manage', '/manage/log', '/manage/tasks', '/manage/users']) {
    await phone.goto(path)
    expect(await phone.evaluate<number>('document.documentElement.scrollWidth'), path).toBeLessThanOrEqual(PHONE.viewport.width)
    // Measured in one step: the Instances table is redrawn live, so cells found one by one may be gone.
    const rows = await phone.locator('table').evaluateAll((tables) => tables.map((table) => {
      const row = table.querySelector('tbody tr')
      const cells = [...row?.querySelectorAll('td, th') ?? []].filter((cell) => cell.getClientRects().length > 0)
      return {
        table: table.getAttribute('aria-label') ?? table.querySelector('caption')?.textContent ?? '',
        cells: cells.map((cell) => { const box = cell.getBoundingClientRect(); return { text: cell.textContent?.trim() ?? '', left: box.left, right: box.right } }),
        times: [...row?.querySelectorAll('time') ?? []].map((time) => ({ text: time.textContent ?? '', lines: time.getClientRects().length })),
      }
    }))
    expect(rows.length, path).toBeGreaterThan(0)
    for (const { table, cells, times } of rows) {
      for (const cell of cells) {
        expect(cell.left, `${path} ${table}: ${cell.text}`).toBeGreaterThanOrEqual(0)
        expect(cell.right, `${path} ${table}: ${cell.text}`).toBeLessThanOrEqual(PHONE.viewport.width)
      }
      for (const time of times) expect(time.lines, `${path} ${table}: ${time.text}`).toBe(1)
    }
  }
  // The instance's name and whether it applied the state are on screen, not off to the right.
  await phone.goto('/manage')
  const instance = phone.getByRole('table', { name: 'Instances' }).getByRole('row').nth(1)
  await instance.scrollIntoViewIfNeeded()
  await expect(instance.getByRole('rowheader')).toBeInViewport()
  await expect(instance.getByRole('cell', { name: /✓ applied/ })).toBeInViewport()
  await context.close()
})

test('on a phone, a visitor finds Sign in on the top line, beside the site\'s name, not alone on a line of its own', async ({ browser }) => {
  const context = await browser.newContext(PHONE)
  const page = await context.newPage()
  await page.goto('/')
  const brand = (await page.getByRole('link', { name: 'Quiesce' }).boundingBox())!
  const signInLink = page.getByRole('banner').getByRole('link', { name: 'Sign in' })
  await expect(signInLink).toBeInViewport()
  const link = (await signInLink.boundingBox())!
  // On the same line: their vertical middles within a few pixels, the link to the right.
  expect(Math.abs((link.y + link.height / 2) - (brand.y + brand.height / 2))).toBeLessThan(8)
  expect(link.x).toBeGreaterThan(brand.x + brand.width)
  expect(link.x + link.width).toBeLessThanOrEqual(PHONE.viewport.width)
  await context.close()
})
