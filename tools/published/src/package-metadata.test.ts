import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkPackageMetadata, FIELD_ORDER, type PackageManifest, REQUIRED_FIELDS } from './package-metadata';
import { publishedPackages, repositoryRoot } from './published';

function readManifests(): PackageManifest[] {
  return Object.keys(publishedPackages).map((folder) => ({
    folder,
    json: JSON.parse(readFileSync(join(repositoryRoot, folder, 'package.json'), 'utf8')),
    hasLicense: existsSync(join(repositoryRoot, folder, 'LICENSE')),
  }));
}

/** A package.json that follows every rule. */
function good(folder: string, extra: Record<string, unknown> = {}): PackageManifest {
  const json: Record<string, unknown> = {};
  for (const field of FIELD_ORDER) {
    if (field in extra) json[field] = extra[field];
    else if (REQUIRED_FIELDS.includes(field)) json[field] = defaults[field];
  }
  return { folder, json, hasLicense: true };
}
const defaults: Record<string, unknown> = {
  name: '@tcmu/x',
  version: '0.0.0',
  description: 'x',
  license: 'Apache-2.0',
  keywords: ['tcmu'],
  type: 'module',
  exports: { '.': { types: './dist/index.d.ts', import: './dist/index.js' } },
  types: './dist/index.d.ts',
  files: ['dist'],
  engines: { node: '>=20.11' },
  sideEffects: false,
  scripts: {},
};
const links = (folder: string, repository = 'git+https://example.invalid/tcmu.git') => ({
  repository: { type: 'git', url: repository, directory: folder },
  homepage: `https://example.invalid/tcmu/tree/main/${folder}#readme`,
  bugs: { url: 'https://example.invalid/tcmu/issues' },
});

describe('package metadata of the published packages', () => {
  it('every package has the same fields in the same order, types first in exports, and its LICENSE', () => {
    expect(checkPackageMetadata(readManifests())).toEqual([]);
  });

  it('no package sets repository/homepage/bugs yet: the project has no public URL (README "Publishing")', () => {
    // When the project gets one, set all three on every package; the check below then holds them together.
    for (const { folder, json } of readManifests()) {
      expect(
        Object.keys(json).filter((f) => ['repository', 'homepage', 'bugs'].includes(f)),
        folder,
      ).toEqual([]);
    }
  });
});

describe('checkPackageMetadata', () => {
  it('accepts packages that follow the rules, with or without project links on all of them', () => {
    expect(checkPackageMetadata([good('packages/a'), good('packages/b')])).toEqual([]);
    expect(
      checkPackageMetadata([
        good('packages/a', links('packages/a')),
        good('packages/b', links('packages/b')),
      ]),
    ).toEqual([]);
  });

  it('refuses a missing field, a field out of order, an unknown field, types not first, no LICENSE', () => {
    const missing = good('packages/a');
    delete missing.json.sideEffects;
    const reordered = good('packages/b');
    const { name, ...rest } = reordered.json;
    const problems = checkPackageMetadata([
      missing,
      { ...reordered, json: { ...rest, name } },
      good('packages/c', { exports: { '.': { import: './dist/index.js', types: './dist/index.d.ts' } } }),
      { ...good('packages/d'), json: { ...good('packages/d').json, main: 'x.js' } },
      { ...good('packages/e'), hasLicense: false },
    ]);
    expect(problems).toEqual([
      'packages/a: package.json has no "sideEffects"',
      expect.stringMatching(
        /^packages\/b: package.json fields are in the order version, .*, name; expected name, /,
      ),
      'packages/c: exports["."] does not list "types" first',
      'packages/d: package.json has fields outside the order: main',
      'packages/e: no LICENSE file',
    ]);
  });

  it('once one package sets project links, every package must, naming one repository', () => {
    expect(checkPackageMetadata([good('packages/a', links('packages/a')), good('packages/b')])).toEqual([
      'packages/b: no repository, homepage, bugs (packages/a sets project links: every package must, and they must agree)',
    ]);
    const fork = {
      ...links('packages/b', 'git+https://example.invalid/tcmu-fork.git'),
      homepage: 'https://example.invalid/tcmu-fork#readme',
    };
    expect(checkPackageMetadata([good('packages/a', links('packages/a')), good('packages/b', fork)])).toEqual(
      [
        'packages/b: repository https://example.invalid/tcmu-fork is not https://example.invalid/tcmu',
        'packages/b: homepage https://example.invalid/tcmu-fork#readme is not under https://example.invalid/tcmu',
      ],
    );
    expect(
      checkPackageMetadata([
        good('packages/a', links('packages/a')),
        good('packages/b', links('packages/a')),
      ]),
    ).toEqual(['packages/b: repository.directory must be "packages/b"']);
  });
});
