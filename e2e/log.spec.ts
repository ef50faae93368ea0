import { readFile } from 'node:fs/promises'
import { expect, test } from '@playwright/test'
import { users } from './fixtures.js'
import { basicCredentials, signIn, uniqueSuffix } from './steps.js'

test('a manager narrows the log to one person\'s refused attempts and downloads them as CSV', async ({ browser, request }) => {
  const reason = `=1+1 stale attempt ${uniqueSuffix()}`
  // Felix tries a change from a stale version: refused, and in the log.
  const refused = await request.put('/api/maintenance', { headers: { authorization: basicCredentials(users.felix) }, data: { mode: 'concurrent', reason, expectedVersion: 999_999 } })
  expect(refused.status()).toBe(409)

  // Signed in through the form: a browser sends no Basic credentials with a download.
  const context = await browser.newContext({ acceptDownloads: true })
  const page = await context.newPage()
  await page.goto('/')
  await signIn(page, users.nina)
  await page.getByRole('link', { name: 'Manage' }).click()
  await page.getByRole('navigation', { name: 'Control panel' }).getByRole('link', { name: 'Log' }).click()
  const filters = page.getByRole('search', { name: 'Filter the log' })
  await filters.getByLabel('Who').fill(users.felix.name)
  await filters.getByLabel('Outcome').selectOption('Refused')
  await filters.getByLabel('From').fill(new Date().toISOString().slice(0, 10))
  await filters.getByRole('button', { name: 'Filter' }).click()
  await expect(page).toHaveURL(/actor=felix&outcome=refused&channel=&from=\d{4}-\d\d-\d\d/)
  await expect(page.getByTestId('log-count')).toContainText('match these filters')
  const rows = page.getByRole('table', { name: 'Maintenance log' }).getByRole('row').filter({ hasText: reason })
  await expect(rows).toHaveCount(1)
  await expect(rows).toContainText('refused')
  for (const row of await page.getByRole('table', { name: 'Maintenance log' }).getByRole('row').all()) {
    const text = await row.textContent()
    if (text?.includes('When') === true) continue
    expect(text).toContain(users.felix.name)
  }

  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download as CSV' }).click()])
  expect(download.suggestedFilename()).toMatch(/^quiesce-maintenance-log-\d{8}-\d{4}\.csv$/)
  const csv = await readFile((await download.path())!, 'utf8')
  expect(csv.split('\r\n')[0]).toBe('id,at,actor,channel,instance,from_mode,to_mode,reason,until,expected_version,new_version,outcome,detail')
  // The reason starts with "=": the cell is neutralised, so a spreadsheet shows it as text.
  expect(csv).toContain('"felix","api"')
  expect(csv).toContain(`"'${reason}"`)
  await context.close()
})
