/**
 * Command-line flags: parsed strictly (an unknown flag is an error), then every value checked and
 * converted, so a typo fails at once with a message that names the flag.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
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
export function intFlag(
  values: Record<string, unknown>,
  name: string,
  def: undefined,
  min: number,
  max: number,
): number | undefined;
export function intFlag(
  values: Record<string, unknown>,
  name: string,
  def: number | undefined,
  min: number,
  max: number,
): number | undefined {
  const raw = values[name];
  if (raw === undefined) return def;
  const s = String(raw).trim();
  if (!/^-?\d+$/.test(s)) throw new UsageError(`--${name} must be an integer, got "${raw}"`);
  const v = Number(s);
  if (!Number.isSafeInteger(v) || v < min || v > max)
    throw new UsageError(`--${name} must be between ${min} and ${max}, got ${s}`);
  return v;
}

/** A positive finite number flag. */
export function numberFlag(
  values: Record<string, unknown>,
  name: string,
  def: number,
  min: number,
  max: number,
): number {
  const raw = values[name];
  if (raw === undefined) return def;
  const v = Number(String(raw).trim());
  if (String(raw).trim() === '' || !Number.isFinite(v) || v < min || v > max)
    throw new UsageError(`--${name} must be a number in [${min}, ${max}], got "${raw}"`);
  return v;
}

/** A flag whose value must be one of `choices`. */
export function choiceFlag<T extends string>(
  values: Record<string, unknown>,
  name: string,
  def: T,
  choices: readonly T[],
): T {
  const raw = values[name];
  if (raw === undefined) return def;
  if (!(choices as readonly string[]).includes(String(raw)))
    throw new UsageError(`--${name} must be one of ${choices.join(', ')}, got "${raw}"`);
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

/** Where a setting's value came from. Precedence: flag > env > file > default. */
export type SettingSource = 'flag' | 'env' | 'file';

export interface ResolvedFlags {
  values: Record<string, string | boolean | undefined>;
  /** The source of every setting that is not at its default. */
  sources: Record<string, SettingSource>;
  /** The config file read, if any. */
  configFile?: string;
}

/** Settings never read from the environment by name (GANFLEET_TOKEN keeps its own meaning). */
const NOT_FROM_ENV = new Set(['help', 'config', 'token']);

/** The environment variable of a flag: --batch-size → GANFLEET_BATCH_SIZE. */
export function envName(flag: string): string {
  return `GANFLEET_${flag.toUpperCase().replace(/-/g, '_')}`;
}

function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function boolFrom(raw: string, what: string): boolean {
  const s = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(s)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(s)) return false;
  throw new UsageError(`${what} must be true or false, got "${raw}"`);
}

/**
 * Reads a config file (YAML, or JSON for *.json): a mapping from flag names (`batch-size`, or
 * `batchSize`) to values. Unknown names and values of the wrong kind are usage errors that name
 * the file and the key.
 */
export function readConfigFile(path: string, spec: FlagSpec): Record<string, string | boolean> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(
      `--config ${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
  let doc: unknown;
  try {
    doc = /\.json$/i.test(path) ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new UsageError(
      `--config ${path}: not valid ${/\.json$/i.test(path) ? 'JSON' : 'YAML'}: ${(err as Error).message.split('\n')[0]}`,
    );
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc))
    throw new UsageError(`--config ${path}: expected a mapping of flag names to values`);
  const out: Record<string, string | boolean> = {};
  for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
    const name = Object.hasOwn(spec, key) ? key : kebab(key);
    if (!Object.hasOwn(spec, name) || name === 'help' || name === 'config') {
      const known = Object.keys(spec)
        .filter((k) => !NOT_FROM_ENV.has(k))
        .sort();
      throw new UsageError(`--config ${path}: unknown setting "${key}" (this command takes: ${known.join(', ')})`);
    }
    if (value === null || value === undefined) continue;
    if (spec[name]!.type === 'boolean') {
      if (typeof value === 'boolean') out[name] = value;
      else if (typeof value === 'string' || typeof value === 'number')
        out[name] = boolFrom(String(value), `--config ${path}: "${key}"`);
      else throw new UsageError(`--config ${path}: "${key}" must be true or false`);
    } else {
      if (typeof value !== 'string' && typeof value !== 'number')
        throw new UsageError(
          `--config ${path}: "${key}" must be a string or a number, got ${Array.isArray(value) ? 'a list' : typeof value}`,
        );
      out[name] = String(value);
    }
  }
  return out;
}

/**
 * Parses `argv` like `parseFlags`, then fills in what the command line left out from environment
 * variables (`GANFLEET_<FLAG>`, e.g. GANFLEET_BATCH_SIZE=256) and then from a config file
 * (`--config PATH` or GANFLEET_CONFIG). Precedence: flags > env > file > the command's defaults.
 * Every value then goes through the same checks as a flag, with the flag's name in any error.
 */
export function resolveFlags(argv: string[], spec: FlagSpec, env: NodeJS.ProcessEnv = process.env): ResolvedFlags {
  const full: FlagSpec = { ...spec, config: { type: 'string' } };
  const cli = parseFlags(argv, full);
  const values: Record<string, string | boolean | undefined> = {};
  const sources: Record<string, SettingSource> = {};
  const configFile = stringFlag(cli, 'config', undefined) ?? (env.GANFLEET_CONFIG?.trim() || undefined);
  const file = configFile !== undefined ? readConfigFile(configFile, spec) : {};
  for (const name of Object.keys(spec)) {
    if (cli[name] !== undefined) {
      values[name] = cli[name];
      sources[name] = 'flag';
      continue;
    }
    const e = NOT_FROM_ENV.has(name) ? undefined : env[envName(name)];
    if (e !== undefined) {
      values[name] = spec[name]!.type === 'boolean' ? boolFrom(e, envName(name)) : e;
      sources[name] = 'env';
      continue;
    }
    if (file[name] !== undefined) {
      values[name] = file[name];
      sources[name] = 'file';
    }
  }
  // A boolean set to false (env or file) is the same as the flag left out.
  for (const [k, v] of Object.entries(values)) if (v === false) delete values[k];
  if (configFile !== undefined) values.config = configFile;
  return { values, sources, configFile };
}

/** The settings that were given (not at their default), for the log and config.json; secrets redacted. */
export function givenSettings(r: ResolvedFlags): Record<string, { value: string | boolean; source: SettingSource }> {
  const out: Record<string, { value: string | boolean; source: SettingSource }> = {};
  for (const [k, source] of Object.entries(r.sources)) {
    const v = r.values[k];
    if (v === undefined) continue;
    out[k] = { value: k === 'token' ? '<redacted>' : v, source };
  }
  return out;
}
