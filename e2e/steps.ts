import { expect, type APIRequestContext, type Page } from '@playwright/test'
import { users, type TestUser } from './fixtures.js'

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

/**
 * Sign-in budget: POST /login allows 10 attempts a minute per address and user name, and the
 * whole suite signs in from 127.0.0.1 within that minute. So each story signs in as people of
 * its own, and nobody signs in through the form more than twice per run (ann 2: browse, phone;
 * ben 1; cleo 2: login; dora 1; felix 1; greta 1; hugo 1; maria 2: emergency-override,
 * maintenance-toggle; nina 2: users, log; otto 2: users (one refused); pia 1; quinn 1: tasks; sara 1, tom 1: panel; mona 2:
 * sign-in-next; sam 1: sign-in-next; rescue 1); a person whose sign-in is not part of the story can use
 * {@link basicCredentials} instead.
 */

/** The `Authorization` header of HTTP Basic credentials, which the site accepts on every request. */
export function basicCredentials (user: TestUser): string {
  return `Basic ${Buffer.from(`${user.name}:${user.password}`).toString('base64')}`
}

export type ModeLabel = 'Normal' | 'Concurrent (read-only)' | 'Exclusive'

/** On the control panel: picks a mode, gives the reason, applies, and checks the panel shows the new mode. */
export async function switchMode (page: Page, mode: ModeLabel, reason = ''): Promise<void> {
  const control = page.getByRole('region', { name: 'Change the mode' })
  await control.getByRole('group', { name: 'Mode' }).getByRole('radio', { name: mode, exact: true }).check()
  await control.getByLabel('Reason').fill(reason)
  await control.getByRole('button', { name: 'Apply' }).click()
  // Closing the site is confirmed on a page of its own, which shows who will be locked out.
  if (mode === 'Exclusive') {
    const confirm = page.getByRole('heading', { level: 1, name: 'Close the site?' })
    await expect(confirm.or(page.getByRole('status').filter({ hasText: 'Done:' }))).toBeVisible()
    if (await confirm.isVisible()) await page.getByRole('button', { name: 'Close the site (Exclusive)' }).click()
  }
  await expect(page.getByRole('status').filter({ hasText: 'Done:' })).toContainText(`the site is now ${mode}`)
  await expect(page.getByTestId('current-mode')).toHaveText(mode)
}

/**
 * Puts the shared server back in normal mode, whatever a story left behind, through the JSON
 * API with HTTP Basic credentials: as the maintainer when that is one of our people, else as
 * the emergency user. Stories share one server, so each calls this when it ends, passed or not.
 */
export async function backToNormal (request: APIRequestContext): Promise<void> {
  const rescue = users.rescue
  const asRescue = { authorization: basicCredentials(rescue) }
  const state = await (await request.get('/api/maintenance', { headers: asRescue })).json() as { mode: string, version: number, maintainer: string | null }
  if (state.mode === 'normal') return
  const maintainer = Object.values<TestUser>(users).find((user) => user.name === state.maintainer) ?? rescue
  const response = await request.put('/api/maintenance', {
    headers: { authorization: basicCredentials(maintainer) },
    data: { mode: 'normal', expectedVersion: state.version },
  })
  expect(response.status(), await response.text()).toBe(200)
}

/** Switches the mode through the JSON API as `user` (a manager, who becomes the maintainer); fails the story if refused. */
export async function setMode (request: APIRequestContext, user: TestUser, mode: 'normal' | 'concurrent' | 'exclusive', extra: { reason?: string, until?: string } = {}): Promise<void> {
  const headers = { authorization: basicCredentials(user) }
  const { version } = await (await request.get('/api/maintenance', { headers })).json() as { version: number }
  const response = await request.put('/api/maintenance', { headers, data: { mode, expectedVersion: version, ...extra } })
  expect(response.status(), await response.text()).toBe(200)
}

/** A browser context signed in by HTTP Basic credentials (no sign-in form: see the sign-in budget above). */
export function signedInAs (user: TestUser): { extraHTTPHeaders: Record<string, string> } {
  return { extraHTTPHeaders: { authorization: basicCredentials(user) } }
}

/** ISO-8601, `minutes` from now, to the minute (the banner shows minutes). */
export function minutesFromNow (minutes: number): string {
  return new Date(Date.now() + minutes * 60_000).toISOString()
}
