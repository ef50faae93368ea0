import type { FieldErrors } from '../errors.js'

const SLUG_PATTERN = /^[a-z0-9]+(?:-[a-z0-9]+)*$/
const SLUG_MAX = 80
const TITLE_MAX = 200
const BODY_MAX = 100_000
const RESERVED_SLUGS = new Set(['new'])
// Matching control characters is the point here.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS_BUT_WHITESPACE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/

export interface DocumentInput {
  title: string
  body: string
}

export function slugProblem (slug: string): string | undefined {
  if (slug === '') return 'is required'
  if (slug.length > SLUG_MAX) return `must be at most ${SLUG_MAX} characters`
  if (!SLUG_PATTERN.test(slug)) return 'may contain only lower-case letters, digits and single dashes between them'
  if (RESERVED_SLUGS.has(slug)) return `"${slug}" is reserved`
  return undefined
}

/** Checks a title and body as typed; returns the cleaned values or a message per bad field. */
export function validateDocumentInput (input: { title?: unknown, body?: unknown }): { value: DocumentInput, errors?: undefined } | { errors: FieldErrors } {
  const errors: FieldErrors = {}
  const title = typeof input.title === 'string' ? input.title.trim() : undefined
  const body = typeof input.body === 'string' ? input.body.replace(/\r\n/g, '\n') : undefined
  if (title === undefined || title === '') errors.title = 'is required'
  else if (title.length > TITLE_MAX) errors.title = `must be at most ${TITLE_MAX} characters`
  else if (CONTROL_CHARACTERS.test(title)) errors.title = 'must be one line of text, without control characters'
  if (body === undefined) errors.body = 'is required'
  else if (body.length > BODY_MAX) errors.body = `must be at most ${BODY_MAX.toLocaleString('en')} characters`
  // Tabs and line breaks are text; other control characters are not (and PostgreSQL cannot store NUL).
  else if (CONTROL_CHARACTERS_BUT_WHITESPACE.test(body)) errors.body = 'must not contain control characters other than tabs and line breaks'
  if (Object.keys(errors).length > 0) return { errors }
  return { value: { title: title!, body: body! } }
}

/** Turns a title into a slug suggestion: "Brass hinge, 40 mm" → "brass-hinge-40-mm". */
export function slugify (title: string): string {
  return title.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').toLowerCase()
    .replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, SLUG_MAX).replace(/-+$/, '')
}
