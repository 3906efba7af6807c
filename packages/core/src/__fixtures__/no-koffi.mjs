// Preload (node --import) for portable.test.ts: makes `koffi` unresolvable, as on a machine where the
// optional dependency did not install (macOS, a browser-less runner). Covers require() (how the ring
// and configfs load it, on first use) and import.
import Module, { register } from 'node:module';

const missing = (specifier) => {
  const error = new Error(`Cannot find module '${specifier}' (hidden by no-koffi.mjs)`);
  error.code = 'MODULE_NOT_FOUND';
  return error;
};
const resolveFilename = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  if (request === 'koffi' || request.startsWith('koffi/')) throw missing(request);
  return resolveFilename.call(this, request, ...rest);
};
register(
  `data:text/javascript,export async function resolve(specifier, context, next) {
    if (specifier === 'koffi' || specifier.startsWith('koffi/')) {
      const error = new Error('Cannot find module ' + specifier + ' (hidden by no-koffi.mjs)');
      error.code = 'ERR_MODULE_NOT_FOUND';
      throw error;
    }
    return next(specifier, context);
  }`,
);
