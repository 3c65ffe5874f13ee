/**
 * Command-line flags: parsed strictly (an unknown flag is an error), then every value checked and
 * converted, so a typo fails at once with a message that names the flag.
 */
import { parseArgs } from 'node:util';
import { UsageError } from '../shared/errors.js';

export type FlagSpec = Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: false }>;

/** Parses `argv` against `spec`; unknown flags and stray positionals are usage errors. */
export function parseFlags(argv: string[], spec: FlagSpec): Record<string, string | boolean | undefined> {
  try {
    const { values, positionals } = parseArgs({ args: argv, options: spec, strict: true, allowPositionals: true });
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    return values as Record<string, string | boolean | undefined>;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const msg = (err as Error).message;
    // node's messages already name the flag ("Unknown option '--bacth-size'"); keep the first line.
    throw new UsageError(msg.split('\n')[0]!.replace(/\. To specify a positional argument.*$/, ''));
  }
}

/** An integer flag within [min, max]. */
export function intFlag(values: Record<string, unknown>, name: string, def: number, min: number, max: number): number;
export function intFlag(values: Record<string, unknown>, name: string, def: undefined, min: number, max: number): number | undefined;
export function intFlag(values: Record<string, unknown>, name: string, def: number | undefined, min: number, max: number): number | undefined {
  const raw = values[name];
  if (raw === undefined) return def;
  const s = String(raw).trim();
  if (!/^-?\d+$/.test(s)) throw new UsageError(`--${name} must be an integer, got "${raw}"`);
  const v = Number(s);
  if (!Number.isSafeInteger(v) || v < min || v > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${s}`);
  return v;
}

/** A positive finite number flag. */
export function numberFlag(values: Record<string, unknown>, name: string, def: number, min: number, max: number): number {
  const raw = values[name];
  if (raw === undefined) return def;
  const v = Number(String(raw).trim());
  if (String(raw).trim() === '' || !Number.isFinite(v) || v < min || v > max) throw new UsageError(`--${name} must be a number in [${min}, ${max}], got "${raw}"`);
  return v;
}

/** A flag whose value must be one of `choices`. */
export function choiceFlag<T extends string>(values: Record<string, unknown>, name: string, def: T, choices: readonly T[]): T {
  const raw = values[name];
  if (raw === undefined) return def;
  if (!(choices as readonly string[]).includes(String(raw))) throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got "${raw}"`);
  return raw as T;
}

/** A non-empty string flag. */
export function stringFlag(values: Record<string, unknown>, name: string, def: string): string;
export function stringFlag(values: Record<string, unknown>, name: string, def: undefined): string | undefined;
export function stringFlag(values: Record<string, unknown>, name: string, def: string | undefined): string | undefined {
  const raw = values[name];
  if (raw === undefined) return def;
  if (typeof raw !== 'string' || raw.trim() === '') throw new UsageError(`--${name} needs a value`);
  return raw;
}
