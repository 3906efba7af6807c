import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, resolveLogFormat } from './logger.js';
import { createCommandTracer } from './trace.js';

function capture() {
  const stream = new PassThrough();
  const chunks: string[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk.toString()));
  return { stream, text: () => chunks.join('') };
}

describe('createLogger', () => {
  it('picks pretty lines on a terminal and JSON lines elsewhere', () => {
    expect(resolveLogFormat('auto', true)).toBe('pretty');
    expect(resolveLogFormat('auto', false)).toBe('json');
    expect(resolveLogFormat('json', true)).toBe('json');
    expect(resolveLogFormat('pretty', false)).toBe('pretty');
  });

  it('writes JSON lines when not on a terminal', () => {
    const out = capture();
    createLogger('info', { device: 'd1' }, { destination: out.stream, terminal: false }).info(
      { size: 4 },
      'ready',
    );
    const line = JSON.parse(out.text().trim());
    expect(line).toMatchObject({ level: 30, device: 'd1', size: 4, msg: 'ready' });
  });

  it('writes one readable, coloured line per record on a terminal', () => {
    const out = capture();
    const logger = createLogger(
      'info',
      { device: 'd1' },
      { destination: out.stream, terminal: true, color: true },
    );
    logger.warn({ signal: 'SIGTERM' }, 'already stopping');
    const text = out.text();
    expect(text.split('\n').filter(Boolean)).toHaveLength(1);
    expect(text).toContain('\u001b['); // ANSI colour
    // biome-ignore lint/suspicious/noControlCharactersInRegex: strips ANSI colours
    const plain = text.replace(/\u001b\[[0-9;]*m/g, '');
    expect(plain).toMatch(
      /^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: already stopping \{.*"device":"d1".*"signal":"SIGTERM".*\}\n$/,
    );
    expect(plain).not.toContain('"pid"');
  });

  it('leaves colours out with color: false, and filters by level', () => {
    const out = capture();
    const logger = createLogger('warn', {}, { destination: out.stream, terminal: true, color: false });
    logger.info({}, 'not shown');
    logger.error({}, 'shown');
    expect(out.text()).toMatch(/^\[[\d:.]+\] ERROR: shown\n$/);
  });
});

describe('createCommandTracer', () => {
  const info = (opcode: number) => ({
    cdb: Uint8Array.of(opcode, 0, 0, 0, 0, 1, 0, 0, 2, 0),
    dataLength: 1024,
    status: 0,
    senseKey: undefined,
    latencyMs: 0.25,
  });

  it('traces at most maxPerSecond commands a second and says how many it skipped', () => {
    const out = capture();
    const logger = createLogger('trace', {}, { destination: out.stream, terminal: false });
    let now = 0;
    const trace = createCommandTracer(logger, { maxPerSecond: 3, now: () => now });
    for (let i = 0; i < 10; i++) trace(info(0x28));
    now = 1000;
    trace(info(0x2a));
    const lines = out
      .text()
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.map((line) => line.msg)).toEqual([
      'READ(10) lba 1 blocks 2 GOOD 0.25 ms',
      'READ(10) lba 1 blocks 2 GOOD 0.25 ms',
      'READ(10) lba 1 blocks 2 GOOD 0.25 ms',
      'trace: 7 commands not traced (sampling at 3/s)',
      'WRITE(10) lba 1 blocks 2 GOOD 0.25 ms',
    ]);
    expect(lines[0]).toMatchObject({
      level: 10,
      op: 'READ(10)',
      opcode: 0x28,
      lba: 1,
      blocks: 2,
      bytes: 1024,
    });
  });
});
