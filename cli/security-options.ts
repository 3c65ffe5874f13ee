/** The token, TLS files and exposure checks of the coordinator, worker and bench commands. */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { UsageError } from '../shared/errors.js';
import type { Options } from './flags.js';

function readFlagFile(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new UsageError(
      `--${flag} ${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
}

/** The shared token from --token, --token-file or GANFLEET_TOKEN (in that order), if any. */
export function tokenFrom(o: Options, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const direct = o.get('token');
  if (direct !== undefined) return direct;
  const file = o.get('tokenFile');
  if (file !== undefined) {
    const token = readFlagFile('token-file', file).toString('utf8').trim();
    if (token === '') throw new UsageError(`--token-file ${file}: the file is empty`);
    return token;
  }
  return env.GANFLEET_TOKEN?.trim() || undefined;
}

/** The PEM file named by a flag (tls-cert, tls-key, ca), with an error that names the flag. */
export function pemFrom(o: Options, key: 'tlsCert' | 'tlsKey' | 'ca'): Buffer | undefined {
  const path = o.get(key);
  return path === undefined ? undefined : readFlagFile(o.table[key].name, path);
}

/** True for addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

/** Refuses a listener that anyone could join: not loopback, no token, and no --insecure. */
export function assertNotExposed(o: Options, host: string, token: string | undefined): void {
  if (token === undefined && !isLoopback(host) && !o.get('insecure'))
    throw new UsageError(
      `refusing to listen on ${host} without a token: anyone who can reach it could join. ` +
        'Set GANFLEET_TOKEN or --token-file, or pass --insecure',
    );
}
