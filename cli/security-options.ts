/** Token, TLS and exposure flags, shared by the coordinator and worker commands. */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { UsageError } from '../shared/errors.js';
import { stringFlag, type FlagSpec } from './flags.js';

export const TOKEN_FLAGS: FlagSpec = {
  token: { type: 'string' },
  'token-file': { type: 'string' },
};

export const TOKEN_HELP = `  --token-file PATH   file holding the shared token (or set GANFLEET_TOKEN; --token TOKEN also
                      works but shows the secret in the process list)`;

function readSecretFile(flag: string, path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(
      `--${flag} ${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
  const token = text.trim();
  if (token === '') throw new UsageError(`--${flag} ${path}: the file is empty`);
  return token;
}

/** The shared token from --token, --token-file or GANFLEET_TOKEN (in that order), if any. */
export function tokenFrom(v: Record<string, unknown>): string | undefined {
  const direct = stringFlag(v, 'token', undefined);
  if (direct !== undefined) return direct;
  const file = stringFlag(v, 'token-file', undefined);
  if (file !== undefined) return readSecretFile('token-file', file);
  const env = process.env.GANFLEET_TOKEN?.trim();
  return env ? env : undefined;
}

/** Reads a PEM file named by a flag, with an error that names the flag. */
export function pemFrom(v: Record<string, unknown>, flag: string): Buffer | undefined {
  const path = stringFlag(v, flag, undefined);
  if (path === undefined) return undefined;
  try {
    return readFileSync(path);
  } catch (err) {
    throw new UsageError(
      `--${flag} ${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
}

/** True for addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}
