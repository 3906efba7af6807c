import { CliError } from './errors.js';

/** `HOST:PORT`, `[IPv6]:PORT`, `:PORT` or `PORT` (host 127.0.0.1). */
export function parseListenAddress(text: string): { host: string; port: number } {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(text) ?? /^()()(\d{1,5})$/.exec(text);
  const port = match ? Number(match[3]) : Number.NaN;
  if (!match || !(port >= 0 && port <= 65535)) {
    throw new CliError(
      'TCMU_ERR_CLI_USAGE',
      `invalid --metrics "${text}": use HOST:PORT, e.g. 127.0.0.1:9464 (port 0 picks a free one)`,
    );
  }
  return { host: match[1] || match[2] || '127.0.0.1', port };
}

/** `host:port` for printing and the state file (IPv6 in brackets). */
export function formatListenAddress(address: { host: string; port: number }): string {
  return address.host.includes(':') ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
