import { isIPv6 } from 'node:net'
import { RateLimiterMemory, type RateLimiterRes } from 'rate-limiter-flexible'
import { RateLimitedError } from '../errors.js'

/**
 * How many failed sign-ins are allowed, and how much verification work at once. Every way of
 * presenting a password (the form, HTTP Basic, the emergency user) counts against the same
 * limits, so that no way around them is left.
 */
export const SIGN_IN_LIMITS = {
  /** Failures per account from one address, in one window: guessing one password is slow. */
  perAccount: 10,
  /** Failures from one address across all accounts, in one window: one password tried on many names is slow too. */
  perAddress: 30,
  windowSeconds: 60,
  /**
   * Passwords one address may have verified at the same moment. argon2 costs 19 MiB and
   * ~10 ms of a core per verification; without this, a burst of wrong passwords would all
   * be verified before the first failure is counted.
   */
  inFlightPerAddress: 4,
} as const

export type SignInChannel = 'form' | 'basic'

/** A refused attempt: 429, with the seconds after which to try again (the `Retry-After`). */
type SignInRefusal = InstanceType<typeof RateLimitedError> & { retryAfter: number }

/**
 * The one sign-in limiter of an instance: failures are counted per (address, account) and
 * per address, in fixed windows. Each verification reserves a failure before it starts (so a
 * burst cannot verify more passwords than the limit allows) and gives it back when the
 * password was right. A locked pair or address is refused before anything is verified, right
 * credentials too: the limit must not tell an attacker which guess was right.
 */
export class SignInLimiter {
  readonly #perAccount = new RateLimiterMemory({ keyPrefix: 'account', points: SIGN_IN_LIMITS.perAccount, duration: SIGN_IN_LIMITS.windowSeconds })
  readonly #perAddress = new RateLimiterMemory({ keyPrefix: 'address', points: SIGN_IN_LIMITS.perAddress, duration: SIGN_IN_LIMITS.windowSeconds })
  readonly #inFlight = new Map<string, number>()

  /**
   * Verifies a password through `verify` unless the limits refuse it first (throws a
   * {@link SignInRefusal}); a verification that finds nobody (undefined) counts as a failure,
   * one that could not run (it threw: the database is down, say) does not.
   */
  async attempt<T> (ip: string, account: string, verify: () => Promise<T | undefined>): Promise<T | undefined> {
    const keys = { pair: pairKey(ip, account), address: addressKey(ip) }
    const inFlight = this.#inFlight.get(keys.address) ?? 0
    if (inFlight >= SIGN_IN_LIMITS.inFlightPerAddress) throw refusal(1000, 'when your other sign-ins have finished')
    await this.#reserve(keys)
    this.#inFlight.set(keys.address, inFlight + 1)
    let failed = false
    try {
      const result = await verify()
      failed = result === undefined
      return result
    } finally {
      const left = (this.#inFlight.get(keys.address) ?? 1) - 1
      if (left === 0) this.#inFlight.delete(keys.address)
      else this.#inFlight.set(keys.address, left)
      if (!failed) await this.#giveBack(keys)
    }
  }

  /** Throws a {@link SignInRefusal} while this address, or this account from this address, is locked. */
  async check (ip: string, account: string): Promise<void> {
    const [pair, address] = await Promise.all([this.#perAccount.get(pairKey(ip, account)), this.#perAddress.get(addressKey(ip))])
    const waitMs = Math.max(
      pair !== null && pair.consumedPoints >= SIGN_IN_LIMITS.perAccount ? pair.msBeforeNext : 0,
      address !== null && address.consumedPoints >= SIGN_IN_LIMITS.perAddress ? address.msBeforeNext : 0)
    if (waitMs > 0) throw refusal(waitMs)
  }

  /** Counts a failure in advance on both keys, atomically (in memory); refuses when either has none left. */
  async #reserve (keys: { pair: string, address: string }): Promise<void> {
    const [pair, address] = await Promise.allSettled([this.#perAccount.consume(keys.pair), this.#perAddress.consume(keys.address)])
    if (pair.status === 'fulfilled' && address.status === 'fulfilled') return
    if (pair.status === 'fulfilled') await this.#perAccount.reward(keys.pair)
    if (address.status === 'fulfilled') await this.#perAddress.reward(keys.address)
    const waitMs = Math.max(...[pair, address].map((outcome) => outcome.status === 'rejected' ? (outcome.reason as RateLimiterRes).msBeforeNext : 0))
    throw refusal(waitMs)
  }

  async #giveBack (keys: { pair: string, address: string }): Promise<void> {
    await Promise.all([this.#perAccount.reward(keys.pair), this.#perAddress.reward(keys.address)])
  }
}

export function isSignInRefusal (err: unknown): err is SignInRefusal {
  return err instanceof RateLimitedError && typeof (err as { retryAfter?: unknown }).retryAfter === 'number'
}

function refusal (waitMs: number, when?: string): SignInRefusal {
  const seconds = Math.max(1, Math.ceil(waitMs / 1000))
  return Object.assign(new RateLimitedError(when ?? `in ${seconds} seconds`), { retryAfter: seconds })
}

function pairKey (ip: string, account: string): string {
  return `${addressKey(ip)}|${accountKey(account)}`
}

/** The name as a person may type it: case and surrounding spaces do not make another account. */
function accountKey (account: string): string {
  return account.trim().toLowerCase()
}

/**
 * One key per client: IPv4 addresses as they are (also when IPv4-mapped), IPv6 addresses by
 * their /64 prefix, since one IPv6 host is usually given a whole /64 to pick addresses from.
 */
export function addressKey (ip: string): string {
  if (ip.startsWith('::ffff:') && !isIPv6(ip.slice(7))) return ip.slice(7)
  if (!isIPv6(ip)) return ip
  const [head = '', tail = ''] = ip.split('::')
  const left = head === '' ? [] : head.split(':')
  const right = tail === '' ? [] : tail.split(':')
  const groups = ip.includes('::') ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left
  return `${groups.slice(0, 4).map((group) => group.toLowerCase().replace(/^0+(?=.)/, '')).join(':')}::/64`
}
