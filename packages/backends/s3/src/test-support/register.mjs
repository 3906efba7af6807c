// Lets a child `node` process run this package's TypeScript sources directly (no build): used by
// the tests that prove data survives into a NEW process. `node --import ./register.mjs child.ts`.
import { register } from 'node:module';

register('./typescript-hooks.mjs', import.meta.url);
