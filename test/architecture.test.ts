import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, it } from 'vitest'

const APP = path.join(import.meta.dirname, '..', 'app')

/** Every .ts file under `dir`, subfolders included. */
function sourceFiles (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => path.join(entry.parentPath, entry.name))
}

// import … from, import type … from, export … from, bare imports, import(), declare module '…'.
const SPECIFIERS = /(?:^|\s)(?:import|export)\s(?:[^'"`;]*?\sfrom\s)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|declare\s+module\s+['"]([^'"]+)['"]/g

/** The relative imports of the files in app/FOLDER/: each importing file and the path it reaches, both relative to app/. */
function reachedFolders (folder: string): Array<{ file: string, target: string }> {
  const reached: Array<{ file: string, target: string }> = []
  for (const file of sourceFiles(path.join(APP, folder))) {
    for (const match of readFileSync(file, 'utf8').matchAll(SPECIFIERS)) {
      const specifier = match[1] ?? match[2] ?? match[3]!
      if (!specifier.startsWith('.')) continue
      reached.push({ file: path.relative(APP, file), target: path.relative(APP, path.resolve(path.dirname(file), specifier)) })
    }
  }
  return reached
}

describe('the layers of app/ hold', () => {
  // The unit of work is generic over who it runs as, and offers seams that the maintenance
  // plugin hooks into: it knows neither people nor maintenance.
  it.each([
    ['unit-of-work', 'auth'],
    ['unit-of-work', 'maintenance'],
  ])('nothing in app/%s/ imports from app/%s/', (folder, forbidden) => {
    const reached = reachedFolders(folder)
    expect(reached.length).toBeGreaterThan(0)
    const crossing = reached.filter(({ target }) => target === forbidden || target.startsWith(`${forbidden}${path.sep}`))
    expect(crossing.map(({ file, target }) => `${file} → app/${target}`)).toEqual([])
  })

  it('the check sees type-only imports and module augmentations too', () => {
    const text = "import type { A } from '../auth/principal.js'\ndeclare module '../auth/plugin.js' {}\nexport { b } from './b.js'\nconst c = await import('../auth/c.js')"
    expect([...text.matchAll(SPECIFIERS)].map((match) => match[1] ?? match[2] ?? match[3])).toEqual(['../auth/principal.js', '../auth/plugin.js', './b.js', '../auth/c.js'])
  })
})

describe('the README\'s architecture', () => {
  it('lists every folder of app/', () => {
    const readme = readFileSync(path.join(APP, '..', 'README.md'), 'utf8')
    const section = readme.slice(readme.indexOf('## Architecture'))
    const listed = new Set([...section.slice(0, section.indexOf('\n## ', 1)).matchAll(/^app\/([a-z-]+)\/ /gm)].map((match) => match[1]))
    const folders = readdirSync(APP, { withFileTypes: true }).filter((entry) => entry.isDirectory()).map((entry) => entry.name)
    expect(folders.filter((folder) => !listed.has(folder))).toEqual([])
    expect(folders.length).toBeGreaterThan(0)
  })
})
