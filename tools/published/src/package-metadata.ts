// The rules every published package.json follows (README.md "Publishing" states them in prose):
// one field order, `exports` with `types` first, a LICENSE file beside it, and the links to the
// project (`repository`, `homepage`, `bugs`) on every package or on none, all naming one repository.

/**
 * The order of a package.json's fields, each marked required (every package has it) or optional
 * (present when a package needs it, always at this place).
 */
const FIELDS = [
  ['name', 'required'],
  ['version', 'required'],
  ['description', 'required'],
  ['license', 'required'],
  ['repository', 'optional'],
  ['homepage', 'optional'],
  ['bugs', 'optional'],
  ['keywords', 'required'],
  ['type', 'required'],
  ['bin', 'optional'],
  ['exports', 'required'],
  ['types', 'required'],
  ['files', 'required'],
  ['engines', 'required'],
  ['sideEffects', 'required'],
  ['scripts', 'required'],
  ['dependencies', 'optional'],
  ['peerDependencies', 'optional'],
  ['peerDependenciesMeta', 'optional'],
  ['optionalDependencies', 'optional'],
  ['devDependencies', 'optional'],
] as const;

export const FIELD_ORDER: readonly string[] = FIELDS.map(([field]) => field);
export const REQUIRED_FIELDS: readonly string[] = FIELDS.filter(([, kind]) => kind === 'required').map(
  ([field]) => field,
);

/** The project links: set them on every package before the first publish (there is no public URL yet). */
const LINK_FIELDS = ['repository', 'homepage', 'bugs'] as const;

export interface PackageManifest {
  /** Folder of the package relative to the repository root, e.g. `packages/backends/file`. */
  readonly folder: string;
  /** The parsed package.json. */
  readonly json: Record<string, unknown>;
  /** A LICENSE file sits beside it. */
  readonly hasLicense: boolean;
}

/** Every rule a published package breaks, one line each (empty: all good). */
export function checkPackageMetadata(manifests: readonly PackageManifest[]): string[] {
  const problems: string[] = [];
  for (const manifest of manifests) problems.push(...checkOne(manifest));
  problems.push(...checkLinks(manifests));
  return problems;
}

function checkOne({ folder, json, hasLicense }: PackageManifest): string[] {
  const problems: string[] = [];
  const fields = Object.keys(json);
  for (const field of REQUIRED_FIELDS) {
    if (!(field in json)) problems.push(`${folder}: package.json has no "${field}"`);
  }
  const unknown = fields.filter((field) => !FIELD_ORDER.includes(field));
  if (unknown.length > 0)
    problems.push(`${folder}: package.json has fields outside the order: ${unknown.join(', ')}`);
  const known = fields.filter((field) => FIELD_ORDER.includes(field));
  const expected = FIELD_ORDER.filter((field) => field in json);
  if (known.join(',') !== expected.join(',')) {
    problems.push(
      `${folder}: package.json fields are in the order ${known.join(', ')}; expected ${expected.join(', ')}`,
    );
  }
  if (json.license !== 'Apache-2.0')
    problems.push(`${folder}: license is ${String(json.license)}, not Apache-2.0`);
  if (!hasLicense) problems.push(`${folder}: no LICENSE file`);
  const exports = json.exports;
  if (typeof exports === 'object' && exports !== null) {
    for (const [subpath, target] of Object.entries(exports)) {
      if (typeof target === 'object' && target !== null && Object.keys(target)[0] !== 'types') {
        problems.push(`${folder}: exports["${subpath}"] does not list "types" first`);
      }
    }
  }
  return problems;
}

/** The repository a link names: `git+https://x/y.git`, `https://x/y`, `https://x/y/issues` → `https://x/y`. */
function repositoryOf(url: string): string {
  return url.replace(/^git\+/, '').replace(/\.git$/, '');
}

function urlOf(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null && typeof (value as { url?: unknown }).url === 'string')
    return (value as { url: string }).url;
  return undefined;
}

function checkLinks(manifests: readonly PackageManifest[]): string[] {
  const problems: string[] = [];
  const setting = manifests.filter(({ json }) => LINK_FIELDS.some((field) => field in json));
  if (setting.length === 0) return problems;
  let repository: string | undefined;
  for (const { folder, json } of manifests) {
    const missing = LINK_FIELDS.filter((field) => urlOf(json[field]) === undefined);
    if (missing.length > 0) {
      problems.push(
        `${folder}: no ${missing.join(', ')} (${setting[0]!.folder} sets project links: every package must, and they must agree)`,
      );
      continue;
    }
    const repositoryField = json.repository as { directory?: unknown } | string;
    const own = repositoryOf(urlOf(repositoryField)!);
    repository ??= own;
    if (own !== repository) problems.push(`${folder}: repository ${own} is not ${repository}`);
    if (typeof repositoryField !== 'object' || repositoryField.directory !== folder) {
      problems.push(`${folder}: repository.directory must be "${folder}"`);
    }
    for (const field of ['homepage', 'bugs'] as const) {
      const url = urlOf(json[field])!;
      const under =
        url === repository || url.startsWith(`${repository}/`) || url.startsWith(`${repository}#`);
      if (!under) problems.push(`${folder}: ${field} ${url} is not under ${repository}`);
    }
  }
  return problems;
}
