import { expect, test, type Page } from '@playwright/test'
import { users } from './fixtures.js'
import { basicCredentials, signIn } from './steps.js'

const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true }

async function openUsers (page: Page): Promise<void> {
  await page.getByRole('link', { name: 'Manage' }).click()
  await page.getByRole('navigation', { name: 'Control panel' }).getByRole('link', { name: 'Users' }).click()
  await expect(page.getByRole('heading', { level: 1, name: 'Users' })).toBeVisible()
}

function rowOf (page: Page, name: string) {
  return page.getByRole('row').filter({ has: page.getByRole('rowheader', { name: new RegExp(`^${name}( \\(you\\))?$`) }) })
}

test('a manager disables a member who is signed in: he is signed out and cannot sign in again', async ({ browser, page: nina }) => {
  const ottoContext = await browser.newContext()
  const otto = await ottoContext.newPage()
  await otto.goto('/')
  await signIn(otto, users.otto)

  await nina.goto('/')
  await signIn(nina, users.nina)
  await openUsers(nina)
  // Her own row says so and offers nothing to click; the action column has a header.
  await expect(nina.getByRole('columnheader', { name: 'Actions' })).toBeVisible()
  const own = rowOf(nina, users.nina.name)
  await expect(own.getByRole('rowheader')).toHaveText(`${users.nina.name} (you)`)
  await expect(own.getByRole('button')).toHaveCount(0)
  await expect(own).toContainText('Another manager changes your own account.')

  await rowOf(nina, users.otto.name).getByRole('button', { name: `Disable ${users.otto.name}` }).click()
  await expect(nina.getByRole('status')).toHaveText(`Disabled ${users.otto.name}: they cannot sign in, and were signed out everywhere.`)
  await expect(rowOf(nina, users.otto.name).getByRole('cell', { name: /^disabled by nina/ })).toBeVisible()
  await expect(nina.getByRole('table', { name: 'Recent changes to users' }).getByRole('row').nth(1)).toContainText(`nina web ${users.otto.name} disabled`)

  // Otto's next page is a visitor's; signing in again is refused.
  await otto.reload()
  await expect(otto.getByRole('link', { name: 'Sign in' })).toBeVisible()
  await expect(otto.getByText(`Signed in as ${users.otto.name}`)).toHaveCount(0)
  await otto.getByRole('link', { name: 'Sign in' }).click()
  await otto.getByLabel('User name').fill(users.otto.name)
  await otto.getByLabel('Password').fill(users.otto.password)
  await otto.getByRole('button', { name: 'Sign in' }).click()
  await expect(otto.getByRole('alert')).toHaveText('Wrong user name or password.')
  await ottoContext.close()
})

test('a manager starts a password reset; the member sets a new password with the one-time link', async ({ browser }) => {
  const managerContext = await browser.newContext({ extraHTTPHeaders: { authorization: basicCredentials(users.nina) } })
  const nina = await managerContext.newPage()
  await nina.goto('/manage/users')
  await rowOf(nina, users.pia.name).getByRole('button', { name: `Reset password: ${users.pia.name}` }).click()
  const shown = nina.getByRole('region', { name: `Password reset link for ${users.pia.name}` })
  await expect(shown).toContainText('It is shown only this once.')
  const link = await shown.getByLabel('Link').inputValue()
  await shown.getByRole('button', { name: 'Copy the link' }).click()
  await expect(shown.getByRole('button', { name: 'Copied' })).toBeVisible()
  expect(link).toMatch(/\/reset\/[A-Za-z0-9_-]{43}$/)
  // Shown once: the page as it is next does not have it.
  await nina.goto('/manage/users')
  await expect(nina.getByText(link)).toHaveCount(0)

  const piaContext = await browser.newContext()
  const pia = await piaContext.newPage()
  await pia.goto(link)
  await expect(pia.getByRole('heading', { level: 1, name: 'Set a new password' })).toBeVisible()
  await expect(pia.getByRole('main')).toContainText(`For ${users.pia.name}.`)
  const newPassword = 'pia-chose-this-one'
  await pia.getByLabel('New password').fill(newPassword)
  await pia.getByLabel('The same again').fill(newPassword)
  await pia.getByRole('button', { name: 'Set the password' }).click()
  await expect(pia.getByRole('status')).toContainText(`The new password of ${users.pia.name} is set`)
  await pia.getByRole('main').getByRole('link', { name: 'Sign in' }).click()
  await pia.getByLabel('User name').fill(users.pia.name)
  await pia.getByLabel('Password').fill(newPassword)
  await pia.getByRole('button', { name: 'Sign in' }).click()
  await expect(pia.getByText(`Signed in as ${users.pia.name}`)).toBeVisible()

  // The link worked once.
  await pia.goto(link)
  await expect(pia.getByRole('alert')).toContainText('This link was used already')
  await piaContext.close()
  await managerContext.close()
})

test('on a phone, the users page shows each user as a card: name, role, status and actions on screen, no sideways scrolling', async ({ browser }) => {
  const phoneContext = await browser.newContext({ ...PHONE, extraHTTPHeaders: { authorization: basicCredentials(users.nina) } })
  const phone = await phoneContext.newPage()
  await phone.goto('/manage/users')
  const row = rowOf(phone, users.ann.name)
  for (const part of [row.getByRole('rowheader'), row.getByRole('cell', { name: 'member' }), row.getByRole('button', { name: `Make manager: ${users.ann.name}` }), row.getByRole('button', { name: `Disable ${users.ann.name}` })]) {
    await part.scrollIntoViewIfNeeded()
    await expect(part).toBeInViewport()
    const box = (await part.boundingBox())!
    expect(box.x).toBeGreaterThanOrEqual(0)
    expect(box.x + box.width).toBeLessThanOrEqual(PHONE.viewport.width)
  }
  expect(await phone.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(PHONE.viewport.width)
  // A date stays on one line.
  const since = row.getByRole('cell').filter({ has: phone.locator('time') }).locator('time')
  expect(await since.evaluate((time) => time.getClientRects().length)).toBe(1)
  await phoneContext.close()
})
