/**
 * The parts of app/maintenance/README.md that are written from the code, and the reading of the
 * parts that are checked against it (test/maintenance-readme.test.ts). Run it to rewrite the
 * generated parts: `npx tsx test/helpers/maintenance-readme.ts`.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { OPTIONS } from '../../app/maintenance/options.js'

export const README_PATH = path.join(import.meta.dirname, '..', '..', 'app', 'maintenance', 'README.md')

export function readReadme (): string {
  return readFileSync(README_PATH, 'utf8')
}

/** The options table, from the options' checks and documentation in options.ts. */
export function optionsTable (): string {
  const rows = Object.entries(OPTIONS).map(([name, rule]) => {
    const shown = rule.required
      ? 'required'
      : rule.shownDefault ?? `\`${JSON.stringify(rule.default)}\``
    return `| \`${name}\` | \`${rule.type.replaceAll('|', '\\|')}\` | ${shown} | ${rule.description} |`
  })
  return ['| option | type | default | meaning |', '|---|---|---|---|', ...rows].join('\n')
}

/** Where the README's `<!-- generated: NAME -->` … `<!-- end: NAME -->` part begins and ends (the lines between). */
function partBounds (readme: string, name: string): { start: number, end: number } | undefined {
  const marker = `<!-- generated: ${name} -->\n`
  const start = readme.indexOf(marker)
  const end = readme.indexOf(`<!-- end: ${name} -->`)
  if (start === -1 || end < start + marker.length) return undefined
  return { start: start + marker.length, end }
}

/** What the README holds between `<!-- generated: NAME -->` and `<!-- end: NAME -->`, without the last line break. */
export function generatedPart (readme: string, name: string): string | undefined {
  const bounds = partBounds(readme, name)
  return bounds === undefined ? undefined : readme.slice(bounds.start, bounds.end).replace(/\n$/, '')
}

function withGeneratedPart (readme: string, name: string, text: string): string {
  const bounds = partBounds(readme, name)
  if (bounds === undefined) throw new Error(`app/maintenance/README.md has no <!-- generated: ${name} --> … <!-- end: ${name} --> part`)
  return `${readme.slice(0, bounds.start)}${text}\n${readme.slice(bounds.end)}`
}

/** The rows of the first table of the section headed `heading` (`## …` or `### …`), as cells. */
export function tableRows (readme: string, heading: string): string[][] {
  const start = readme.indexOf(`\n${heading}\n`)
  if (start === -1) return []
  const rest = readme.slice(start + heading.length + 2)
  const next = rest.search(/\n#{2,3} /)
  const section = next === -1 ? rest : rest.slice(0, next)
  const lines = section.split('\n').filter((line) => line.startsWith('|'))
  // The header and the |---| line go; a cell may hold an escaped \|.
  return lines.slice(2).map((line) => line.slice(1, -1).split(/(?<!\\)\|/).map((cell) => cell.trim()))
}

/** The names in a first cell: `` `name(args)` `` or `` `fastify.name` `` gives name. */
export function codeName (cell: string): string {
  const code = /`([^`]+)`/.exec(cell)?.[1] ?? cell
  return code.replace(/\(.*$/, '')
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  writeFileSync(README_PATH, withGeneratedPart(readReadme(), 'options', optionsTable()))
  console.log(`rewrote the options table of ${path.relative(process.cwd(), README_PATH)}`)
}
