import { describe, expect, it } from 'vitest';
import { defaultName, parseServeArguments, validateName } from './arguments.js';
import { expectCliError } from './test-support.js';

const context = { cwd: '/work', pid: 4242 };
const serve = (...argv: string[]) => parseServeArguments(argv, context);
const options = (...argv: string[]) => {
  const parsed = serve(...argv);
  if (parsed.help) throw new Error('unexpected help');
  return parsed.options;
};

describe('parseServeArguments', () => {
  it('fills defaults', () => {
    expect(options('memory:', '--size', '64M')).toEqual({
      backend: { kind: 'memory' },
      size: 64 * 1024 ** 2,
      name: 'memory-4242',
      nameIsDefault: true,
      blockSize: 512,
      lun: 0,
      hba: undefined,
      readOnly: false,
      forceLease: false,
      queueDepth: undefined,
      json: false,
      logLevel: 'info',
      logFormat: 'auto',
      linkDirectory: '/dev/tcmu',
      run: undefined,
      pidFile: undefined,
      metrics: undefined,
    });
  });

  it('reads every option', () => {
    expect(
      options(
        'file:disk.img',
        '--size=1G',
        '--name',
        'db-1',
        '--block-size',
        '4096',
        '--lun',
        '3',
        '--hba',
        '7',
        '--read-only',
        '--queue-depth',
        '32',
        '--json',
        '--log-level',
        'debug',
        '--log-format',
        'json',
        '--link-dir',
        'links',
        '--run',
        'mkfs.ext4 "$TCMU_DEVICE"',
        '--pidfile',
        'serve.pid',
        '--metrics',
        '[::1]:9464',
      ),
    ).toEqual({
      backend: { kind: 'file', path: '/work/disk.img' },
      size: 1024 ** 3,
      name: 'db-1',
      nameIsDefault: false,
      blockSize: 4096,
      lun: 3,
      hba: 7,
      readOnly: true,
      forceLease: false,
      queueDepth: 32,
      json: true,
      logLevel: 'debug',
      logFormat: 'json',
      linkDirectory: '/work/links',
      run: 'mkfs.ext4 "$TCMU_DEVICE"',
      pidFile: '/work/serve.pid',
      metrics: { host: '::1', port: 9464 },
    });
  });

  it('reads the idle spin window (--idle-spin-us), 0 included', () => {
    expect(options('memory:', '-s', '8M', '--idle-spin-us', '0')).toMatchObject({ idleSpinMicroseconds: 0 });
    expect(options('memory:', '-s', '8M', '--idle-spin-us', '250')).toMatchObject({
      idleSpinMicroseconds: 250,
    });
    expect(options('memory:', '-s', '8M')).toMatchObject({ idleSpinMicroseconds: undefined });
  });

  it('reads the restart window options', () => {
    expect(options('memory:', '-s', '8M', '--command-timeout', '90', '--scsi-timeout', '120')).toMatchObject({
      commandTimeoutSeconds: 90,
      scsiTimeoutSeconds: 120,
    });
    expect(options('memory:', '-s', '8M')).toMatchObject({
      commandTimeoutSeconds: undefined,
      scsiTimeoutSeconds: undefined,
    });
  });

  it('takes the log level and format from TCMU_LOG_LEVEL/TCMU_LOG_FORMAT unless given as options', () => {
    const env = { TCMU_LOG_LEVEL: 'trace', TCMU_LOG_FORMAT: 'pretty' };
    const parse = (...argv: string[]) => {
      const parsed = parseServeArguments(argv, { cwd: '/work', pid: 4242, env });
      if (parsed.help) throw new Error('help');
      return parsed.options;
    };
    expect(parse('memory:', '-s', '1M')).toMatchObject({ logLevel: 'trace', logFormat: 'pretty' });
    expect(parse('memory:', '-s', '1M', '--log-level', 'warn', '--log-format', 'json')).toMatchObject({
      logLevel: 'warn',
      logFormat: 'json',
    });
    expectCliError(
      () =>
        parseServeArguments(['memory:', '-s', '1M'], { cwd: '/', pid: 1, env: { TCMU_LOG_LEVEL: 'loud' } }),
      'TCMU_ERR_CLI_USAGE',
      /^invalid TCMU_LOG_LEVEL "loud": use one of trace, debug/,
    );
  });

  it('links /dev/tcmu by default, elsewhere with --link-dir, nowhere with --no-link', () => {
    expect(options('memory:', '-s', '1M', '--no-link').linkDirectory).toBeUndefined();
    expect(options('memory:', '-s', '1M', '--link-dir', '/srv/disks/').linkDirectory).toBe('/srv/disks');
    expectCliError(
      () => options('memory:', '-s', '1M', '--no-link', '--link-dir', '/x'),
      'TCMU_ERR_CLI_USAGE',
      /--link-dir or --no-link/,
    );
  });

  it.each([
    ['9464', '127.0.0.1', 9464],
    [':0', '127.0.0.1', 0],
    ['0.0.0.0:80', '0.0.0.0', 80],
  ])('reads --metrics %s', (text, host, port) => {
    expect(options('memory:', '-s', '1M', '--metrics', text).metrics).toEqual({ host, port });
  });

  it.each(['localhost', '1.2.3.4:99999', '::1:80', ''])('refuses --metrics "%s"', (text) => {
    expectCliError(
      () => options('memory:', '-s', '1M', '--metrics', text),
      'TCMU_ERR_CLI_USAGE',
      /invalid --metrics/,
    );
  });

  it('accepts short options and options before the backend', () => {
    const parsed = options('-s', '8M', '-b', '4096', '-n', 'x', 'memory:');
    expect(parsed).toMatchObject({ size: 8 * 1024 ** 2, blockSize: 4096, name: 'x' });
  });

  it('lets an existing file image or S3 volume omit --size', () => {
    expect(options('file:/images/a.img').size).toBeUndefined();
    expect(options('s3://bucket/vol').size).toBeUndefined();
  });

  it('reads --force-lease for an s3:// volume', () => {
    expect(options('s3://disks/vol?endpoint=http://h:7480', '--force-lease')).toMatchObject({
      backend: { kind: 's3', bucket: 'disks', prefix: 'vol' },
      forceLease: true,
      readOnly: false,
    });
  });

  it('returns help for --help and -h even with other arguments', () => {
    expect(serve('--help')).toEqual({ help: true });
    expect(serve('memory:', '-h')).toEqual({ help: true });
  });

  it.each([
    [[], 'TCMU_ERR_CLI_USAGE', /missing backend/],
    [['memory:'], 'TCMU_ERR_CLI_USAGE', /missing --size/],
    [['memory:', 'file:/x', '--size', '1M'], 'TCMU_ERR_CLI_USAGE', /unexpected argument "file:\/x"/],
    [
      ['memory:', 's3://KEY:hunter2pw@b1b/v', '--size', '1M'],
      'TCMU_ERR_CLI_USAGE',
      /unexpected argument "s3:\/\/\*\*\*@b1b\/v"/,
    ],
    [['memory:', '--size'], 'TCMU_ERR_CLI_USAGE', /--size/],
    [['memory:', '--size', '1M', '--bogus'], 'TCMU_ERR_CLI_USAGE', /^unknown option --bogus$/],
    [['memory:', '--size', '12X'], 'TCMU_ERR_CLI_SIZE', /invalid size "12X"/],
    [['memory:', '--size', '1M', '--block-size', '1024'], 'TCMU_ERR_CLI_BLOCK_SIZE', /use 512 or 4096/],
    [['memory:', '--size', '1M', '--block-size', '4k'], 'TCMU_ERR_CLI_BLOCK_SIZE', /use 512 or 4096/],
    [
      ['memory:', '--size', '6K', '--block-size', '4096'],
      'TCMU_ERR_CLI_BLOCK_SIZE',
      /not a whole number of 4096-byte/,
    ],
    [['memory:', '--size', '1000'], 'TCMU_ERR_CLI_BLOCK_SIZE', /not a whole number of 512-byte/],
    [['bogus:', '--size', '1M'], 'TCMU_ERR_CLI_BACKEND_URL', /unknown backend scheme "bogus:"/],
    [['memory:', '--size', '1M', '--lun', '256'], 'TCMU_ERR_CLI_USAGE', /--lun "256": must be from 0 to 255/],
    [['memory:', '--size', '1M', '--lun', '-1'], 'TCMU_ERR_CLI_USAGE', /--lun/],
    [['memory:', '--size', '1M', '--hba', 'x'], 'TCMU_ERR_CLI_USAGE', /invalid --hba "x"/],
    [['memory:', '--size', '1M', '--queue-depth', '0'], 'TCMU_ERR_CLI_USAGE', /--queue-depth "0"/],
    [['memory:', '--size', '1M', '--idle-spin-us', '10001'], 'TCMU_ERR_CLI_USAGE', /--idle-spin-us "10001"/],
    [['memory:', '--size', '1M', '--idle-spin-us', '-1'], 'TCMU_ERR_CLI_USAGE', /--idle-spin-us/],
    [['memory:', '--size', '1M', '--command-timeout', '-1'], 'TCMU_ERR_CLI_USAGE', /--command-timeout/],
    [['memory:', '--size', '1M', '--scsi-timeout', '0'], 'TCMU_ERR_CLI_USAGE', /--scsi-timeout "0"/],
    [['memory:', '--size', '1M', '--log-level', 'loud'], 'TCMU_ERR_CLI_USAGE', /--log-level "loud"/],
    [['memory:', '--size', '1M', '--name', 'a/b'], 'TCMU_ERR_CLI_USAGE', /invalid name "a\/b"/],
    [['memory:', '--size', '1M', '--read-only=yes'], 'TCMU_ERR_CLI_USAGE', /read-only/],
    [['memory:', '--size', '1M', '--force-lease'], 'TCMU_ERR_CLI_USAGE', /--force-lease applies only to s3/],
    [['file:/x.img', '--force-lease'], 'TCMU_ERR_CLI_USAGE', /--force-lease applies only to s3/],
    [
      ['s3://disks/vol?endpoint=http://h:7480', '--force-lease', '--read-only'],
      'TCMU_ERR_CLI_USAGE',
      /--force-lease makes no sense with --read-only/,
    ],
  ])('rejects %j with %s', (argv, code, message) => {
    expectCliError(() => serve(...argv), code, message);
  });
});

describe('names', () => {
  it.each(['a', 'disk-1', 'A.b_c-9', 'x'.repeat(64)])('accepts %j', (name) => {
    expect(validateName(name)).toBe(name);
  });

  it.each(['', '-a', '.hidden', 'a b', 'a:b', 'a/b', 'x'.repeat(65), 'ü'])('rejects %j', (name) => {
    expect(() => validateName(name)).toThrow(/invalid name/);
  });

  it('derives a default name from the backend', () => {
    expect(defaultName({ kind: 'memory' }, 7)).toBe('memory-7');
    expect(defaultName({ kind: 'file', path: '/x/My Disk.img' }, 7)).toBe('My-Disk');
    expect(defaultName({ kind: 'file', path: '/x/.img' }, 7)).toBe('img');
    expect(defaultName({ kind: 'file', path: '/x/__' }, 7)).toBe('file-7');
    expect(defaultName({ kind: 's3', bucket: 'bkt', prefix: 'a/vol1/', parameters: {}, url: '' }, 7)).toBe(
      'vol1',
    );
    expect(defaultName({ kind: 's3', bucket: 'bkt', prefix: '', parameters: {}, url: '' }, 7)).toBe('bkt');
  });
});
