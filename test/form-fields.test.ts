import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestSite, type TestSite } from './helpers/app.js'
import { DATABASE_KINDS } from './helpers/databases.js'
import { addPrincipals, anonymousBrowser, basicOf, signedInBrowser, type Account } from './helpers/principals.js'
import { backToNormal, switchTo } from './helpers/maintenance.js'
import { dataSnapshot } from './helpers/snapshot.js'

/**
 * Form routes take JSON too, and a field sent twice arrives as a list: each field of every form
 * is text, or the request is refused with 400 naming the field. (Handlers called string methods
 * on such values: 500.) The sign-in form is the exception: it takes such a field as empty, a wrong
 * name or password (app/auth/routes.ts).
 */
const FORMS: Array<{ url: string, fields: string[], as: Account | 'anonymous' }> = [
  { url: '/reset', fields: ['token', 'password', 'again'], as: 'anonymous' },
  { url: '/docs', fields: ['slug', 'title', 'body', 'version'], as: 'member' },
  { url: '/docs/form-fields', fields: ['title', 'body', 'version'], as: 'member' },
  { url: '/docs/form-fields/delete', fields: ['version'], as: 'member' },
  { url: '/manage/maintenance', fields: ['mode', 'reason', 'until', 'expectedVersion', 'confirmed'], as: 'manager' },
  { url: '/manage/windows', fields: ['mode', 'reason', 'startsAt', 'endsAt'], as: 'manager' },
  { url: '/manage/users', fields: ['username', 'password', 'role'], as: 'manager' },
  { url: '/manage/users/ann/role', fields: ['role', 'version'], as: 'manager' },
  { url: '/manage/users/ann/disable', fields: ['version'], as: 'manager' },
  { url: '/manage/users/ann/enable', fields: ['version'], as: 'manager' },
  { url: '/manage/users/ann/remove', fields: ['version'], as: 'manager' },
  { url: '/manage/users/ann/reset', fields: ['version'], as: 'manager' },
]

describe.each(DATABASE_KINDS)('form fields on %s', (kind) => {
  let site: TestSite

  beforeAll(async () => {
    site = await startTestSite(kind)
    await addPrincipals(site)
    await site.app.inject({ method: 'PUT', url: '/api/docs/form-fields', headers: { authorization: basicOf('emergency') }, payload: { title: 'Form fields', body: 'x' } })
  })
  afterAll(async () => { await site.close() })

  /**
   * A browser's cookie and CSRF token, as the headers of a form post (Basic credentials carry no
   * authority to a form).
   */
  async function sessionOf (as: Account | 'anonymous'): Promise<Record<string, string>> {
    const browser = as === 'anonymous' ? await anonymousBrowser(site.app) : await signedInBrowser(site.app, as)
    return { cookie: browser.cookie, 'x-csrf-token': browser.csrf }
  }

  async function post (form: typeof FORMS[number], contentType: string, payload: string) {
    const headers = { ...await sessionOf(form.as), accept: 'application/json', 'content-type': contentType }
    return site.app.inject({ method: 'POST', url: form.url, headers, payload })
  }

  it.each(FORMS.map((form) => [form.url, form] as const))('POST %s: a field that is an object, or a list of several, is refused (400) and nothing is written', async (_url, form) => {
    for (const field of form.fields) {
      for (const [contentType, payload] of [
        ['application/json', JSON.stringify({ [field]: { text: 'an object' } })],
        ['application/json', JSON.stringify({ [field]: ['one', 'two'] })],
        ['application/x-www-form-urlencoded', `${field}=one&${field}=two`],
      ] as const) {
        const before = await dataSnapshot(site.database)
        const response = await post(form, contentType, payload)
        expect(response.statusCode, `${field} in ${payload}`).toBe(400)
        expect(response.json(), `${field} in ${payload}`).toMatchObject({ code: 'QUIESCE_INVALID_INPUT', fields: { [field]: 'must be string' } })
        expect(await dataSnapshot(site.database)).toEqual(before)
      }
    }
  })

  it('the sign-in form takes a name or password that is not text as empty: a wrong one (401)', async () => {
    for (const payload of ['username=ann&username=ann&password=ann-password', JSON.stringify({ username: { name: 'ann' }, password: 'ann-password' }), JSON.stringify({ username: 'ann', password: ['ann-password', 'x'] })]) {
      const response = await post({ url: '/login', fields: [], as: 'anonymous' }, payload.startsWith('{') ? 'application/json' : 'application/x-www-form-urlencoded', payload)
      expect(response.statusCode, payload).toBe(401)
    }
  })

  it('a form posted without a body is an empty one; a JSON body that is not an object is refused', async () => {
    const empty = await site.app.inject({ method: 'POST', url: '/docs', headers: { ...await sessionOf('member'), accept: 'application/json' } })
    expect(empty.statusCode).toBe(400)
    expect(empty.json()).toMatchObject({ code: 'QUIESCE_INVALID_INPUT', fields: { title: 'is required', body: 'is required' } })
    for (const payload of ['"text"', '[1]', '7', 'true']) {
      const response = await site.app.inject({ method: 'POST', url: '/docs', headers: { ...await sessionOf('member'), accept: 'application/json', 'content-type': 'application/json' }, payload })
      expect(response.statusCode, payload).toBe(400)
      expect(response.json().code, payload).toBe('QUIESCE_INVALID_INPUT')
    }
  })

  it.each(['normal', 'concurrent'] as const)('in %s mode, a refused change shows the control panel again with what was submitted, text or not', async (mode) => {
    if (mode !== 'normal') await switchTo(site.app, basicOf('maintainer'), mode)
    try {
      for (const [url, body] of [
        ['/manage/maintenance', { mode: 7, reason: { text: 'x' }, until: { at: 'noon' }, expectedVersion: [] }],
        ['/manage/maintenance', { mode: 'concurrent', until: 9007199254740994, expectedVersion: 'x' }],
        ['/manage/windows', { mode: ['a', 'b'], reason: {}, startsAt: { at: 'noon' }, endsAt: 12 }],
      ] as const) {
        const response = await site.app.inject({ method: 'POST', url, headers: { ...await sessionOf('maintainer'), accept: 'text/html', 'content-type': 'application/json' }, payload: body })
        expect(response.statusCode, `${url} ${JSON.stringify(body)}`).toBe(400)
        expect(response.body).toContain('<h1>Control panel</h1>')
      }
    } finally {
      await backToNormal(site.app, basicOf('maintainer'))
    }
  })

  it('a number or true in JSON is taken as its text, as a form would send it', async () => {
    const response = await site.app.inject({
      method: 'POST',
      url: '/docs',
      headers: { ...await sessionOf('member'), 'content-type': 'application/json' },
      payload: { title: 807209791, body: true },
    })
    expect(response.statusCode).toBe(303)
    expect(response.headers.location).toBe('/docs/807209791?saved=1')
    const stored = await site.app.inject({ url: '/api/docs/807209791' })
    expect(stored.json()).toMatchObject({ title: '807209791', body: 'true' })
  })

  it('the search page takes one query: two are refused (400), not a 500', async () => {
    const response = await site.app.inject({ url: '/search?q=a&q=b', headers: { accept: 'application/json' } })
    expect(response.statusCode).toBe(400)
    expect(response.json()).toMatchObject({ code: 'QUIESCE_INVALID_INPUT', fields: { q: 'must be string' } })
    expect((await site.app.inject({ url: '/search?q=form' })).statusCode).toBe(200)
  })
})
