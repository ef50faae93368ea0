import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { addressKey, SIGN_IN_LIMITS } from '../app/auth/sign-in-limiter.js'
import { basicAuth, csrfTokenIn, mainOf, sessionCookieOf, startTestSite, type TestSite } from './helpers/app.js'
import { DATABASE_KINDS } from './helpers/databases.js'
import { addPrincipals, signedInBrowser } from './helpers/principals.js'

const FORM = 'application/x-www-form-urlencoded'

/**
 * One limiter for every way of presenting a password (the sign-in form, HTTP Basic, the
 * emergency user): failures per (address, account) and per address, a locked pair refused
 * even with the right password, verification work bounded per address, and every failure
 * recorded where managers see it.
 */
describe.each(DATABASE_KINDS)('the sign-in limits on %s', (kind) => {
  let site: TestSite
  let addresses = 0

  /** An address no other test of this file has used. */
  function freshIp (): string {
    addresses++
    return `10.${kind === 'sqlite' ? 11 : 12}.${Math.floor(addresses / 250)}.${addresses % 250 + 1}`
  }

  beforeAll(async () => {
    site = await startTestSite(kind)
    await addPrincipals(site, ['member', 'manager', 'emergency'])
  })
  afterAll(async () => { await site.close() })

  async function formSignIn (ip: string, username: string, password: string, headers: Record<string, string> = {}) {
    const page = await site.app.inject({ url: '/login', remoteAddress: ip })
    return site.app.inject({
      method: 'POST',
      url: '/login',
      remoteAddress: ip,
      headers: { cookie: sessionCookieOf(page)!, 'content-type': FORM, ...headers },
      payload: new URLSearchParams({ _csrf: csrfTokenIn(page.body), username, password }).toString(),
    })
  }

  function basic (ip: string, username: string, password: string, url = '/api/docs') {
    return site.app.inject({ url, remoteAddress: ip, headers: { authorization: basicAuth(username, password) } })
  }

  function expectRefused (response: Awaited<ReturnType<typeof basic>>): void {
    expect(response.statusCode, response.body).toBe(429)
    expect(response.json()).toMatchObject({ statusCode: 429, code: 'QUIESCE_RATE_LIMITED' })
    const retryAfter = Number(response.headers['retry-after'])
    expect(retryAfter).toBeGreaterThan(0)
    expect(retryAfter).toBeLessThanOrEqual(SIGN_IN_LIMITS.windowSeconds)
  }

  async function failuresRecorded (account: string) {
    return site.database.writer.selectFrom('sign_in_failure').selectAll().where('account', '=', account).orderBy('id').execute()
  }

  it('while an account is locked by wrong form passwords, HTTP Basic is refused for it too, right password or not', async () => {
    const ip = freshIp()
    for (let attempt = 1; attempt <= SIGN_IN_LIMITS.perAccount; attempt++) {
      expect((await formSignIn(ip, 'ann', `wrong-${attempt}`)).statusCode).toBe(401)
    }
    expect((await formSignIn(ip, 'ann', 'ann-password')).statusCode).toBe(429)
    expectRefused(await basic(ip, 'ann', 'ann-password'))
    expectRefused(await basic(ip, 'ann', 'another-guess'))
    // The lock is this account's from this address: other accounts and other addresses go on.
    expect((await basic(ip, 'deputy', 'deputy-password')).statusCode).toBe(200)
    expect((await basic(freshIp(), 'ann', 'ann-password')).statusCode).toBe(200)
  })

  it('wrong HTTP Basic passwords are counted and limited, and lock the sign-in form too', async () => {
    const ip = freshIp()
    const started = Date.now()
    const statuses: number[] = []
    // A loop of guesses, as fast as it can go: it gets the limit's worth, then 429s.
    for (let attempt = 1; attempt <= 40; attempt++) statuses.push((await basic(ip, 'deputy', `guess-${attempt}`)).statusCode)
    expect(statuses.filter((status) => status === 401)).toHaveLength(SIGN_IN_LIMITS.perAccount)
    expect(statuses.slice(SIGN_IN_LIMITS.perAccount).every((status) => status === 429)).toBe(true)
    expectRefused(await basic(ip, 'deputy', 'deputy-password'))
    const form = await formSignIn(ip, 'deputy', 'deputy-password')
    expect(form.statusCode).toBe(429)
    expect(mainOf(form.body)).toContain('<code>QUIESCE_RATE_LIMITED</code>')
    expect(Number(form.headers['retry-after'])).toBeGreaterThan(0)
    const recorded = (await failuresRecorded('deputy')).filter((row) => row.address === ip)
    expect(recorded).toHaveLength(SIGN_IN_LIMITS.perAccount)
    expect(recorded.every((row) => row.channel === 'basic' && Date.parse(row.at) >= started - 1000)).toBe(true)
  })

  it('the emergency user\'s password is limited the same way', async () => {
    const ip = freshIp()
    for (let attempt = 1; attempt <= SIGN_IN_LIMITS.perAccount; attempt++) {
      expect((await basic(ip, 'root', `guess-${attempt}`, '/api/instances')).statusCode).toBe(401)
    }
    expectRefused(await basic(ip, 'root', 'root-emergency-pw', '/api/instances'))
    expect((await basic(freshIp(), 'root', 'root-emergency-pw', '/api/instances')).statusCode).toBe(200)
  })

  it('one address trying one password against many names is limited across the names', async () => {
    const ip = freshIp()
    for (let name = 1; name <= SIGN_IN_LIMITS.perAddress; name++) {
      const response = name % 2 === 0 ? await basic(ip, `user-${name}`, 'Summer2026!') : await formSignIn(ip, `user-${name}`, 'Summer2026!')
      expect(response.statusCode, `name ${name}`).toBe(401)
    }
    expectRefused(await basic(ip, 'someone-new', 'Summer2026!'))
    expect((await formSignIn(ip, 'ann', 'ann-password')).statusCode).toBe(429)
    expect((await formSignIn(freshIp(), 'ann', 'ann-password')).statusCode).toBe(303)
  })

  it('the case of the name, spaces around it and X-Forwarded-For do not make another account or address', async () => {
    const ip = freshIp()
    const variants = ['ann', 'ANN', ' ann', 'Ann ', 'aNn']
    for (let attempt = 0; attempt < SIGN_IN_LIMITS.perAccount; attempt++) {
      const response = await formSignIn(ip, variants[attempt % variants.length]!, `wrong-${attempt}`, { 'x-forwarded-for': `203.0.113.${attempt}` })
      expect(response.statusCode).toBe(401)
    }
    expect((await formSignIn(ip, 'ann', 'ann-password', { 'x-forwarded-for': '198.51.100.7' })).statusCode).toBe(429)
  })

  it('a verified Basic credential is not a way around a lock', async () => {
    const ip = freshIp()
    expect((await basic(ip, 'ann', 'ann-password')).statusCode).toBe(200)
    for (let attempt = 1; attempt <= SIGN_IN_LIMITS.perAccount; attempt++) await basic(ip, 'ann', `wrong-${attempt}`)
    // The same header as the first, verified and remembered then, is refused now.
    expectRefused(await basic(ip, 'ann', 'ann-password'))
  })

  it('a burst of guesses at once verifies no more passwords than the limit allows', async () => {
    const ip = freshIp()
    const responses = await Promise.all(Array.from({ length: 40 }, (_, i) => basic(ip, 'ann', `burst-${i}`)))
    const statuses = responses.map((response) => response.statusCode)
    expect(statuses.filter((status) => status === 401).length).toBeLessThanOrEqual(SIGN_IN_LIMITS.perAccount)
    expect(statuses.filter((status) => status === 401).length).toBeGreaterThan(0)
    expect(statuses.every((status) => status === 401 || status === 429)).toBe(true)
    expect((await failuresRecorded('ann')).filter((row) => row.address === ip).length).toBeLessThanOrEqual(SIGN_IN_LIMITS.perAccount)
  })

  it('a burst of requests with the same new, right credentials shares one verification', async () => {
    // A script starting 40 requests at once, or every client after a restart: one argon2
    // verification for them all, not 40 reservations that run into the limit.
    const ip = freshIp()
    const responses = await Promise.all(Array.from({ length: 40 }, () => basic(ip, 'deputy', 'deputy-password')))
    expect(responses.map((response) => response.statusCode)).toEqual(Array.from({ length: 40 }, () => 200))
    // And the same burst with a wrong password is one failure, not 40.
    const wrong = await Promise.all(Array.from({ length: 40 }, () => basic(ip, 'deputy', 'not-the-deputys-password')))
    expect(wrong.map((response) => response.statusCode)).toEqual(Array.from({ length: 40 }, () => 401))
    expect((await failuresRecorded('deputy')).filter((row) => row.address === ip)).toHaveLength(1)
  })

  it('right passwords count nothing: people and scripts sign in many times a minute from one address', async () => {
    const ip = freshIp()
    for (let request = 0; request < SIGN_IN_LIMITS.perAddress + 5; request++) {
      // Each form sign-in verifies its password (Basic would be answered from the cache).
      const response = request % 2 === 0 ? await formSignIn(ip, 'ann', 'ann-password') : await formSignIn(ip, 'deputy', 'deputy-password')
      expect(response.statusCode).toBe(303)
    }
    expect((await basic(ip, 'ann', 'ann-password')).statusCode).toBe(200)
  })

  it('managers see failed sign-ins, with the name tried, the address and the way; others may not', async () => {
    const ip = freshIp()
    await formSignIn(ip, 'nobody-<b>here</b>', 'x')
    await basic(ip, 'ann', 'not-her-password')
    const deputy = await signedInBrowser(site.app, 'manager')
    const page = await site.app.inject({ url: '/manage/sign-ins', headers: { cookie: deputy.cookie } })
    expect(page.statusCode).toBe(200)
    const main = mainOf(page.body)
    expect(main).toMatch(/<strong>\d+<\/strong> failed sign-ins? in the last 24 hours/)
    expect(main).toContain('nobody-&lt;b&gt;here&lt;/b&gt;')
    expect(main).not.toContain('<b>here</b>')
    expect(main).toContain(ip)
    expect(main).toContain('HTTP Basic')
    expect(main).toContain('sign-in form')
    const ann = await signedInBrowser(site.app, 'member')
    expect((await site.app.inject({ url: '/manage/sign-ins', headers: { cookie: ann.cookie } })).statusCode).toBe(403)
    expect((await site.app.inject({ url: '/manage/sign-ins' })).statusCode).toBe(401)
  })
})

describe('addressKey', () => {
  it.each([
    ['192.0.2.7', '192.0.2.7'],
    ['::ffff:192.0.2.7', '192.0.2.7'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::9', '2001:db8:1:2::/64'],
    ['2001:0DB8:0001:0002:ffff::1', '2001:db8:1:2::/64'],
    ['::1', '0:0:0:0::/64'],
  ])('%s → %s: one IPv6 host gets a /64, so the limit holds per /64', (ip, key) => {
    expect(addressKey(ip)).toBe(key)
  })
})
