import { createRequire } from 'node:module';

/** This package's version, read from package.json (one folder up from both src/ and dist/). */
export function cliVersion(): string {
  const require = createRequire(import.meta.url);
  return (require('../package.json') as { version: string }).version;
}
