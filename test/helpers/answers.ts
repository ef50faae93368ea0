/** A response, from `inject` or a real connection. */
export interface Answer {
  status: number
  headers: Record<string, unknown>
  body: string
}

/** What an HTML page says about a refusal, for the pages that show no `<code>` (forms shown again, the control panel). */
const PAGE_MESSAGES: Array<[string, string]> = [
  ['<h1>Closed for maintenance</h1>', 'QUIESCE_EXCLUSIVE'],
  ['The site is in Concurrent (read-only) maintenance, so changes cannot be saved', 'QUIESCE_READ_ONLY'],
  ['Not saved: The site is in Concurrent (read-only) maintenance', 'QUIESCE_READ_ONLY'],
  ['Not changed: The site is in Concurrent (read-only) maintenance', 'QUIESCE_READ_ONLY'],
  ['You are not signed in (your session may have ended)', 'QUIESCE_UNAUTHORIZED'],
  ['The form expired or did not come from this site', 'QUIESCE_CSRF_INVALID'],
  ['someone else changed the maintenance state while you were looking at it', 'QUIESCE_STATE_CONFLICT'],
  ['is its maintainer now, so only', 'QUIESCE_NOT_MAINTAINER'],
]

/** The error code of a refused answer: `code` of the JSON, or what the page shows. */
export function codeOf (answer: Answer): string | undefined {
  if (answer.status < 400) return undefined
  if (String(answer.headers['content-type']).startsWith('application/json')) {
    try {
      return (JSON.parse(answer.body) as { code?: string }).code
    } catch {
      return undefined
    }
  }
  const shown = /<code>(QUIESCE_[A-Z_]+)<\/code>/.exec(answer.body)?.[1]
  if (shown !== undefined) return shown
  return PAGE_MESSAGES.find(([text]) => answer.body.includes(text))?.[1]
}

/** `503 QUIESCE_READ_ONLY`, `200`: status and code, as the matrix writes its cells. */
export function describeAnswer (answer: Answer): string {
  const code = codeOf(answer)
  return `${answer.status}${code === undefined ? '' : ` ${code}`}`
}

/** The 5xx answers the product documents (README, Error codes): maintenance, and a state that cannot be read. */
export const DOCUMENTED_503_CODES = ['QUIESCE_EXCLUSIVE', 'QUIESCE_READ_ONLY', 'QUIESCE_STATE_UNAVAILABLE']
