/** What a command may touch of its process: injected so tests run commands without spawning. */
export interface CommandIo {
  /** Writes to standard output (the command's results: ready lines, tables, JSON). */
  readonly stdout: (text: string) => void;
  /** Writes to standard error (the one-line error; logs go through pino on fd 2). */
  readonly stderr: (text: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly cwd: string;
  readonly pid: number;
}

export const processIo: CommandIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  env: process.env,
  cwd: process.cwd(),
  pid: process.pid,
};
