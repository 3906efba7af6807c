// @tcmu/cli as a library: the `tcmu` command line (`run`) and the parsers it uses, for tools that
// build their own command lines on top of tcmu.
export {
  BLOCK_SIZES,
  defaultName,
  LOG_LEVELS,
  type LogLevel,
  type ParseContext,
  type Parsed,
  parseServeArguments,
  type ServeOptions,
  validateName,
} from './arguments.js';
export { type BackendLocation, formatBackendLocation, parseBackendLocation } from './backend-url.js';
export { CliError, type CliErrorCode, exitCodeOf, formatError } from './errors.js';
export type { CommandIo } from './io.js';
export { run } from './main.js';
export { formatSize, parseSize } from './size.js';
