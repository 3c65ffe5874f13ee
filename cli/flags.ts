/**
 * Reads a command's settings from the flag table (cli/flag-table.ts): the command line (strict: an
 * unknown flag is an error), then GANFLEET_<FLAG> variables, then a config file (--config PATH or
 * GANFLEET_CONFIG), then the table's defaults. Every value goes through its row's check, whatever its
 * source, so a typo fails at once with exit 2 and a message that names the flag. The same table gives
 * --help and the configuration that is logged and saved (persistedSettings).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { UsageError } from '../shared/errors.js';
import { COMMAND_HELP, FLAGS, type FlagTable } from './flag-table.js';
import type { Command, Flag } from './flag-values.js';

/** Where a setting's value came from. Precedence: flag > env > file > default. */
export type SettingSource = 'flag' | 'env' | 'file';

export type AnyTable = Record<string, Flag<unknown>>;
type ValueOf<F> = F extends Flag<infer T> ? T : never;

/** A command's resolved settings. Values are checked when resolved; `get` returns them converted. */
export interface Options<TB extends AnyTable = FlagTable> {
  readonly command: Command;
  readonly table: TB;
  /** --help or -h was given: nothing else was checked. */
  readonly help: boolean;
  /** The config file read, if any. */
  readonly configFile: string | undefined;
  /** The source of every setting that is not at its default, by flag name. */
  readonly sources: Readonly<Record<string, SettingSource>>;
  /** The value of the row `key` (a table key, e.g. 'batchSize'), or its default. */
  get<K extends keyof TB & string>(key: K): ValueOf<TB[K]>;
  /** Whether the row `key` was set (by flag, environment or file). */
  given(key: keyof TB & string): boolean;
}

/** The environment variable of a flag: batch-size → GANFLEET_BATCH_SIZE. */
export function envName(flag: string): string {
  return `GANFLEET_${flag.toUpperCase().replace(/-/g, '_')}`;
}

/** The rows that `command` takes, as [key, row], in table order. */
export function flagsOf<TB extends AnyTable>(command: Command, table: TB): Array<[keyof TB & string, Flag<unknown>]> {
  const rows = Object.entries(table).filter(([, f]) => f.commands.includes(command));
  const seen = new Set<string>();
  for (const [, f] of rows) {
    if (seen.has(f.name)) throw new Error(`flag table: two rows named --${f.name} for ${command}`);
    seen.add(f.name);
  }
  return rows as Array<[keyof TB & string, Flag<unknown>]>;
}

const isSwitch = (f: Flag<unknown>) => f.arg === undefined;

function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function boolFrom(raw: string, what: string): boolean {
  const s = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(s)) return true;
  if (['0', 'false', 'no', 'off', ''].includes(s)) return false;
  throw new UsageError(`${what} must be true or false, got "${raw}"`);
}

function cannotRead(what: string, err: unknown): UsageError {
  return new UsageError(`${what}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
}

/** The command line, strictly: unknown flags and stray arguments are usage errors naming them. */
function parseCommandLine(argv: string[], rows: Array<[string, Flag<unknown>]>): Record<string, string | boolean> {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const [, f] of rows)
    options[f.name] = { type: isSwitch(f) ? 'boolean' : 'string', ...(f.short ? { short: f.short } : {}) };
  // parseArgs reads "--lr -1" as a flag without its value ("ambiguous"): a negative number is a value.
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const name = /^--([^=]+)$/.exec(argv[i]!)?.[1];
    const next = argv[i + 1];
    if (name && options[name]?.type === 'string' && next !== undefined && /^-\.?\d/.test(next)) {
      args.push(`--${name}=${next}`);
      i++;
    } else args.push(argv[i]!);
  }
  try {
    const { values, positionals } = parseArgs({ args, options, strict: true, allowPositionals: true });
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    return values as Record<string, string | boolean>;
  } catch (err) {
    if (err instanceof UsageError) throw err;
    // node's messages already name the flag ("Unknown option '--bacth-size'"); keep the first line.
    const msg = (err as Error).message.split('\n')[0]!;
    throw new UsageError(msg.replace(/\. To specify a positional argument.*$/, ''));
  }
}

/**
 * Reads a config file (YAML, or JSON for *.json): a mapping from flag names (`batch-size`, or
 * `batchSize`) to values. Unknown names and values of the wrong kind are usage errors that name
 * the file and the key.
 */
export function readConfigFile(
  path: string,
  rows: Array<[string, Flag<unknown>]>,
  otherNames: ReadonlySet<string> = new Set(),
): Record<string, string | boolean> {
  const json = /\.json$/i.test(path);
  let doc: unknown;
  try {
    const text = readFileSync(path, 'utf8');
    try {
      doc = json ? JSON.parse(text) : parseYaml(text);
    } catch (err) {
      const first = (err as Error).message.split('\n')[0];
      throw new UsageError(`--config ${path}: not valid ${json ? 'JSON' : 'YAML'}: ${first}`);
    }
  } catch (err) {
    throw err instanceof UsageError ? err : cannotRead(`--config ${path}`, err);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc))
    throw new UsageError(`--config ${path}: expected a mapping of flag names to values`);
  const byName = new Map(rows.filter(([, f]) => f.name !== 'help' && f.name !== 'config').map(([, f]) => [f.name, f]));
  const out: Record<string, string | boolean> = {};
  for (const [key, v] of Object.entries(doc as Record<string, unknown>)) {
    const f = byName.get(key) ?? byName.get(kebab(key));
    if (!f) {
      // One file may serve several commands (`local` passes GANFLEET_CONFIG on to its workers):
      // another command's setting is skipped here; a name no command takes is a typo.
      if (otherNames.has(key) || otherNames.has(kebab(key))) continue;
      const known = [...byName.keys()].sort().join(', ');
      throw new UsageError(`--config ${path}: unknown setting "${key}" (this command takes: ${known})`);
    }
    if (v === null || v === undefined) continue;
    const what = `--config ${path}: "${key}"`;
    if (isSwitch(f)) {
      if (typeof v === 'boolean') out[f.name] = v;
      else if (typeof v === 'string' || typeof v === 'number') out[f.name] = boolFrom(String(v), what);
      else throw new UsageError(`${what} must be true or false`);
    } else if (typeof v === 'string' || typeof v === 'number') out[f.name] = String(v);
    else throw new UsageError(`${what} must be a string or a number, got ${Array.isArray(v) ? 'a list' : typeof v}`);
  }
  return out;
}

/**
 * Resolves `command`'s settings from `argv`, the environment and a config file. Unless --help was
 * given, every value is checked here, so a bad one fails before anything starts.
 */
export function resolveOptions<TB extends AnyTable = FlagTable>(
  command: Command,
  argv: string[],
  opts: { env?: NodeJS.ProcessEnv; table?: TB } = {},
): Options<TB> {
  const env = opts.env ?? process.env;
  const table = (opts.table ?? FLAGS) as TB;
  const rows = flagsOf(command, table);
  const cli = parseCommandLine(argv, rows);
  const help = cli.help === true;
  const configFile =
    (typeof cli.config === 'string' ? cli.config : undefined) ?? (env[envName('config')]?.trim() || undefined);
  const everyName = new Set(Object.values(table).map((f) => f.name));
  const file = configFile !== undefined && !help ? readConfigFile(configFile, rows, everyName) : {};
  const raw: Record<string, string | boolean> = {};
  const sources: Record<string, SettingSource> = {};
  for (const [, f] of rows) {
    if (f.name === 'help' || f.name === 'config') continue;
    const e = f.env === false ? undefined : env[envName(f.name)];
    let v: string | boolean | undefined;
    let source: SettingSource;
    if (cli[f.name] !== undefined) [v, source] = [cli[f.name], 'flag'];
    else if (e !== undefined) [v, source] = [isSwitch(f) ? boolFrom(e, envName(f.name)) : e, 'env'];
    else if (file[f.name] !== undefined) [v, source] = [file[f.name], 'file'];
    else continue;
    // A switch turned off (GANFLEET_NO_SAMPLES=0, `no-samples: false`) is the switch left out.
    if (v === false) continue;
    raw[f.name] = v!;
    sources[f.name] = source;
  }

  const memo = new Map<string, unknown>();
  const get = (key: string): unknown => {
    if (memo.has(key)) return memo.get(key);
    const f = table[key];
    if (!f?.commands.includes(command)) throw new Error(`flag table: ${command} has no row "${key}"`);
    const r = raw[f.name];
    let v: unknown;
    if (isSwitch(f)) v = r === true;
    else if (r === undefined) {
      if (f.required) throw new UsageError(`--${f.name} ${f.arg} is required`);
      v = typeof f.default === 'function' ? (f.default as (c: unknown) => unknown)({ command, get }) : f.default;
    } else v = convert(f, String(r), sources[f.name]!, configFile);
    memo.set(key, v);
    return v;
  };
  if (!help) for (const [key] of rows) get(key);
  return {
    command,
    table,
    help,
    configFile,
    sources,
    get: get as Options<TB>['get'],
    given: (key) => sources[table[key]!.name] !== undefined,
  };
}

/** Runs a row's check; an error says where the value came from, and never shows a secret. */
function convert(f: Flag<unknown>, raw: string, source: SettingSource, configFile: string | undefined): unknown {
  try {
    return f.parse!(raw, f.name);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    const msg = f.secret ? `--${f.name}: not a valid value (not shown: it is a secret)` : err.message;
    if (source === 'env') throw new UsageError(`${msg} (from ${envName(f.name)})`);
    if (source === 'file') throw new UsageError(`${msg} (from --config ${configFile})`);
    throw new UsageError(msg);
  }
}

/**
 * The configuration to log once and save (config.json, checkpoint metadata): every persisted row of
 * the command with its value, default included, and where each given one came from. An allow-list:
 * rows with `persist: false` and every secret stay out. `extra` adds derived facts (auth: true).
 */
export function persistedSettings<TB extends AnyTable>(
  o: Options<TB>,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  const sources: Record<string, SettingSource> = {};
  for (const [key, f] of flagsOf(o.command, o.table)) {
    if (!f.persist || f.secret) continue;
    const v = o.get(key);
    if (v !== undefined) values[f.name] = v;
    const source = o.sources[f.name];
    if (source !== undefined) sources[f.name] = source;
  }
  return { command: o.command, configFile: o.configFile ?? null, values, sources, ...extra };
}

// ---- --help ------------------------------------------------------------------------------------

const WIDTH = 100;
const INDENT = 22;

function wrap(text: string, first: string, indent: number): string[] {
  const lines: string[] = [];
  let line = first;
  let empty = true;
  for (const w of text.split(' ')) {
    if (!empty && line.length + 1 + w.length > WIDTH) {
      lines.push(line);
      line = ' '.repeat(indent) + w;
    } else line += (empty ? '' : ' ') + w;
    empty = false;
  }
  lines.push(line);
  return lines;
}

function defaultText(command: Command, f: Flag<unknown>): string {
  if (f.required) return ' (required)';
  if (f.defaultHelp !== undefined) return ` (default: ${f.defaultHelp})`;
  if (isSwitch(f)) return '';
  let d = f.default;
  if (typeof d === 'function') {
    try {
      d = d({ command, get: () => undefined });
    } catch {
      return '';
    }
  }
  return d === undefined ? '' : ` (default ${String(d)})`;
}

/** `ganfleet <command> --help`: the command's rows of `table`, its notes and its examples. */
export function helpText(command: Command, table: AnyTable = FLAGS): string {
  const h = COMMAND_HELP[command];
  const rows = flagsOf(command, table);
  const out = [`ganfleet ${command} — ${h.title}`, '', `Usage: ${h.usage}`, '', 'Options:'];
  for (const [, f] of rows) {
    const left = `  ${f.short ? `-${f.short}, ` : ''}--${f.name}${f.arg ? ` ${f.arg}` : ''}`;
    const first = left.length <= INDENT - 2 ? left.padEnd(INDENT) : `${left}  `;
    out.push(...wrap(f.help + defaultText(command, f), first, INDENT));
  }
  const sample = rows.find(([, f]) => !isSwitch(f) && f.env !== false && f.name !== 'config')?.[1];
  const noEnv = rows.filter(([, f]) => f.env === false && f.name !== 'help').map(([, f]) => `--${f.name}`);
  const config =
    'Every flag can also be set as GANFLEET_<FLAG>' +
    (sample ? ` (${envName(sample.name)}=${sample.arg} for --${sample.name} ${sample.arg})` : '') +
    (noEnv.length ? `, except ${noEnv.join(', ')},` : '') +
    ' or as a key of the --config file (GANFLEET_CONFIG=PATH does the same). Precedence: flags > environment >' +
    ' config file > defaults.';
  out.push('', ...wrap(config, '', 0));
  if (h.notes) out.push('', h.notes);
  out.push('', 'Examples:', ...h.examples.map((e) => `  ${e}`), '');
  return out.join('\n');
}
