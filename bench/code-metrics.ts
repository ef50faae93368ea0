// Counts in app/: type assertions (`x as T`, `<T>x`, not `as const`), non-null assertions (`x!`),
// and the longest functions (lines). Usage: npx tsx bench/code-metrics.ts [repo dir]
import { readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import ts from 'typescript'

const root = path.resolve(process.argv[2] ?? '.', 'app')
const files: string[] = []
const walk = (dir: string) => { for (const name of readdirSync(dir)) { const p = path.join(dir, name); if (statSync(p).isDirectory()) walk(p); else if (p.endsWith('.ts')) files.push(p) } }
walk(root)
let casts = 0; let nonNull = 0; let lines = 0
const functions: Array<{ name: string, lines: number, file: string }> = []
for (const file of files) {
  const text = readFileSync(file, 'utf8')
  lines += text.split('\n').length
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true)
  const visit = (node: ts.Node) => {
    if (ts.isAsExpression(node) && !(ts.isTypeReferenceNode(node.type) && node.type.typeName.getText() === 'const')) casts++
    if (ts.isTypeAssertionExpression(node)) casts++
    if (ts.isNonNullExpression(node)) nonNull++
    if (ts.isFunctionDeclaration(node) || ts.isFunctionExpression(node) || ts.isArrowFunction(node) || ts.isMethodDeclaration(node)) {
      const start = source.getLineAndCharacterOfPosition(node.getStart()).line
      const end = source.getLineAndCharacterOfPosition(node.getEnd()).line
      let name = (node as ts.FunctionDeclaration).name?.getText() ?? ''
      if (name === '' && ts.isVariableDeclaration(node.parent)) name = node.parent.name.getText()
      if (name === '' && ts.isCallExpression(node.parent)) name = `(callback of ${node.parent.expression.getText().slice(0, 40)})`
      functions.push({ name, lines: end - start + 1, file: path.relative(root, file) })
    }
    ts.forEachChild(node, visit)
  }
  visit(source)
}
functions.sort((a, b) => b.lines - a.lines)
console.log(`files ${files.length}, lines ${lines}, casts ${casts}, non-null assertions ${nonNull}`)
console.log('longest functions:')
for (const f of functions.slice(0, 8)) console.log(`  ${f.lines} lines  ${f.name}  (app/${f.file})`)
console.log(`functions over 60 lines: ${functions.filter((f) => f.lines > 60).length}`)
