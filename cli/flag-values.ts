/**
 * The shape of one row of the flag table (cli/flag-table.ts) and the value checks rows use. A check
 * takes the raw text (from the command line, GANFLEET_<FLAG> or the config file) and returns the
 * converted value or throws a UsageError that names the flag, so every source is checked the same way.
 */
import { isAbsolute } from 'node:path';
import { UsageError } from '../shared/errors.js';

export const COMMANDS = ['local', 'coordinator', 'worker', 'sample', 'export', 'eval', 'bench'] as const;
export type Command = (typeof COMMANDS)[number];

/** Converts a flag's raw text; `flag` is its name for error messages ("batch-size"). */
export type Parser<T> = (raw: string, flag: string) => T;

/** What a computed default may read: the command, and other flags' values (by table key). */
export interface DefaultContext {
  command: Command;
  get(key: string): unknown;
}
export type DefaultFn<T> = (ctx: DefaultContext) => T;

interface Common {
  /** The flag without dashes: --batch-size, GANFLEET_BATCH_SIZE, config key batch-size or batchSize. */
  name: string;
  /** One line for --help (wrapped when printed); the default is appended from `default`/`defaultHelp`. */
  help: string;
  /** The commands that take this flag. Two rows may share a name if no command takes both. */
  commands: readonly Command[];
  /** What --help says the default is, where `default` is computed or says nothing useful. */
  defaultHelp?: string;
  /** false: not read from GANFLEET_<FLAG> (help, or a name the environment already uses otherwise). */
  env?: false;
  short?: string;
}

/**
 * `persist`: whether the value goes into the logged and saved configuration (config.json, the
 * checkpoint's metadata). It is an allow-list: a new row must say. A `secret` (token, key,
 * passphrase) is never persisted, logged or echoed in an error message.
 */
type Persistence = { persist: boolean; secret?: undefined } | { persist: false; secret: true };

export type FlagInit = Common & Persistence;

export type Flag<T> = FlagInit & {
  /** The value's placeholder in --help ("N", "PATH"); absent for a switch, which takes no value. */
  arg?: string;
  parse?: Parser<T>;
  default?: T | DefaultFn<T>;
  required?: true;
};

/** A flag that takes a value. Without `default` or `required` (or with a default that may not be), undefined. */
export function value<T>(
  f: FlagInit & { arg: string; parse: Parser<T>; default: NoInfer<T> | DefaultFn<NoInfer<T>> },
): Flag<T>;
export function value<T>(f: FlagInit & { arg: string; parse: Parser<T>; required: true }): Flag<T>;
export function value<T>(
  f: FlagInit & { arg: string; parse: Parser<T>; default?: DefaultFn<NoInfer<T> | undefined> },
): Flag<T | undefined>;
export function value<T>(f: Flag<T>): Flag<T> {
  return f;
}

/** A switch: true when given (--no-samples, GANFLEET_NO_SAMPLES=1, `no-samples: true`), else false. */
export function toggle(f: FlagInit): Flag<boolean> {
  return { ...f, default: false };
}

// ---- value checks ------------------------------------------------------------------------------

/** An integer in [min, max]. */
export function int(min: number, max: number): Parser<number> {
  return (raw, flag) => {
    const s = raw.trim();
    if (!/^-?\d+$/.test(s)) throw new UsageError(`--${flag} must be an integer, got "${raw}"`);
    const v = Number(s);
    if (!Number.isSafeInteger(v) || v < min || v > max)
      throw new UsageError(`--${flag} must be between ${min} and ${max}, got ${s}`);
    return v;
  };
}

function finite(raw: string): number | undefined {
  const s = raw.trim();
  const v = Number(s);
  return s === '' || !Number.isFinite(v) ? undefined : v;
}

/** A finite number in [min, max]. */
export function num(min: number, max: number): Parser<number> {
  return (raw, flag) => {
    const v = finite(raw);
    if (v === undefined || v < min || v > max)
      throw new UsageError(`--${flag} must be a number in [${min}, ${max}], got "${raw}"`);
    return v;
  };
}

/** A number > 0 and ≤ max; `what` says what it is ("the learning rate"). */
export function positive(what: string, max: number): Parser<number> {
  return (raw, flag) => {
    const v = finite(raw);
    if (v === undefined) throw new UsageError(`--${flag} must be a number (${what}), got "${raw}"`);
    if (v <= 0 || v > max) throw new UsageError(`--${flag} must be positive and at most ${max} (${what}), got ${v}`);
    return v;
  };
}

/** One of `choices`. */
export function choice<T extends string>(choices: readonly T[]): Parser<T> {
  return (raw, flag) => {
    if (!(choices as readonly string[]).includes(raw))
      throw new UsageError(`--${flag} must be one of ${choices.join(', ')}, got "${raw}"`);
    return raw as T;
  };
}

/** Any non-empty text (a path, a host name, a URL checked elsewhere). */
export const text: Parser<string> = (raw, flag) => {
  if (raw.trim() === '') throw new UsageError(`--${flag} needs a value`);
  return raw;
};

/** An absolute path. */
export const absolutePath: Parser<string> = (raw, flag) => {
  if (!isAbsolute(text(raw, flag))) throw new UsageError(`--${flag} must be an absolute path, got "${raw}"`);
  return raw;
};

/** A comma-separated list of integers in [min, max]: "1,2,4". */
export function intList(min: number, max: number): Parser<number[]> {
  return (raw, flag) =>
    raw.split(',').map((p) => {
      const s = p.trim();
      if (!/^\d+$/.test(s) || Number(s) < min || Number(s) > max)
        throw new UsageError(`--${flag} must be a comma-separated list of integers in [${min}, ${max}], got "${raw}"`);
      return Number(s);
    });
}

/** A comma-separated list of numbers in [min, max]: "1,1,0.1" (one number is a list of one). */
export function numList(min: number, max: number): Parser<number[]> {
  return (raw, flag) =>
    raw.split(',').map((p) => {
      const s = p.trim();
      const v = Number(s);
      if (s === '' || !Number.isFinite(v) || v < min || v > max)
        throw new UsageError(
          `--${flag} must be a number in [${min}, ${max}] or a comma-separated list of them, got "${raw}"`,
        );
      return v;
    });
}
