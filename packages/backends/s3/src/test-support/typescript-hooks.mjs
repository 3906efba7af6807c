// Module hooks for test child processes: map workspace package names to their sources and
// transpile .ts files with the workspace's TypeScript (types are stripped, nothing is checked).
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = new URL('../../../../../', import.meta.url);
const aliases = {
  '@tcmu/backend': 'packages/backends/backend/src/index.ts',
  '@tcmu/backend-s3': 'packages/backends/s3/src/index.ts',
};

export async function resolve(specifier, context, next) {
  const alias = aliases[specifier];
  if (alias) return { url: new URL(alias, root).href, shortCircuit: true };
  const parent = context.parentURL;
  if (parent?.endsWith('.ts') && (specifier.startsWith('./') || specifier.startsWith('../'))) {
    const url = new URL(specifier, parent);
    if (!url.pathname.endsWith('.ts') && !url.pathname.endsWith('.js') && !url.pathname.endsWith('.mjs')) {
      for (const candidate of [`${url.href}.ts`, `${url.href}/index.ts`]) {
        if (existsSync(fileURLToPath(candidate))) return { url: candidate, shortCircuit: true };
      }
    }
  }
  return next(specifier, context);
}

export async function load(url, context, next) {
  if (!url.endsWith('.ts')) return next(url, context);
  const fileName = fileURLToPath(url);
  const source = await readFile(fileName, 'utf8');
  const output = ts.transpileModule(source, {
    fileName,
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, sourceMap: false },
  });
  return { format: 'module', source: output.outputText, shortCircuit: true };
}
