import { describe, expect, it } from 'vitest';
import { CliError, exitCodeOf, formatError } from './errors.js';
import { explainError, rootCause } from './explain-error.js';

const coded = (code: string, message: string, cause?: unknown) =>
  Object.assign(new Error(message, cause === undefined ? undefined : { cause }), { code });

describe('formatError', () => {
  it('prints a CliError on one line with its code and hint', () => {
    const error = new CliError('TCMU_ERR_CLI_SIZE', 'invalid size "x"', { hint: 'see tcmu serve --help' });
    expect(formatError(error, 'tcmu serve')).toBe(
      'tcmu serve: invalid size "x" (see tcmu serve --help) [TCMU_ERR_CLI_SIZE]',
    );
  });

  it('keeps any coded error from another package on one line', () => {
    expect(formatError(coded('TCMU_ERR_BACKEND_NOT_FOUND', 'no such file\n  /x'))).toBe(
      'tcmu: no such file; /x [TCMU_ERR_BACKEND_NOT_FOUND]',
    );
  });

  it('labels errors without a code as internal, without a stack', () => {
    const line = formatError(new TypeError('x is undefined'));
    expect(line).toBe('tcmu: internal error: x is undefined');
    expect(formatError('boom')).toBe('tcmu: internal error: boom');
  });

  it('maps exit codes: usage 2, everything else 1', () => {
    expect(exitCodeOf(new CliError('TCMU_ERR_CLI_USAGE', 'x'))).toBe(2);
    expect(exitCodeOf(new CliError('TCMU_ERR_CLI_NO_TCMU', 'x'))).toBe(1);
    expect(exitCodeOf(new Error('x'))).toBe(1);
  });
});

describe('explainError', () => {
  const context = { name: 'disk', noTcmuHint: 'use the lab' };

  it('finds the innermost coded cause', () => {
    const inner = coded('TCMU_ERR_BACKEND_NOT_FOUND', 'gone');
    expect(rootCause(coded('TCMU_ERR_CORE_OPEN', 'open failed', inner))).toBe(inner);
    expect(explainError(coded('TCMU_ERR_CORE_OPEN', 'open failed', inner), context)).toBe(inner);
  });

  it('turns not-root, missing modules and existing names into CLI errors with advice', () => {
    expect(explainError(coded('TCMU_ERR_NOT_ROOT', 'needs root'), context)).toMatchObject({
      code: 'TCMU_ERR_CLI_NOT_ROOT',
    });
    const noTcmu = explainError(
      coded('TCMU_ERR_CORE_OPEN', 'x', coded('TCMU_ERR_MODULE_MISSING', 'no module')),
      context,
    );
    expect(noTcmu).toMatchObject({ code: 'TCMU_ERR_CLI_NO_TCMU', hint: 'use the lab' });
    expect((noTcmu as Error).message).toBe('this kernel has no TCMU: no module');
    const inUse = explainError(coded('TCMU_ERR_ALREADY_EXISTS', 'user_0/disk exists'), context) as CliError;
    expect(inUse.code).toBe('TCMU_ERR_CLI_NAME_IN_USE');
    expect(inUse.message).toMatch(/the name "disk" is already in use/);
    const served = explainError(
      coded(
        'TCMU_ERR_CORE_OPEN',
        'x',
        coded('TCMU_ERR_DEVICE_IN_USE', 'device user_0/disk is served by running process 7'),
      ),
      context,
    ) as CliError;
    expect(served).toMatchObject({
      code: 'TCMU_ERR_CLI_NAME_IN_USE',
      hint: expect.stringMatching(/stop that server/),
    });
    expect(served.message).toBe(
      'the name "disk" is already in use: device user_0/disk is served by running process 7',
    );
  });

  it('passes CliErrors and uncoded errors through unchanged', () => {
    const cli = new CliError('TCMU_ERR_CLI_FILE', 'x');
    const plain = new Error('plain');
    expect(explainError(cli, context)).toBe(cli);
    expect(explainError(plain, context)).toBe(plain);
  });
});
