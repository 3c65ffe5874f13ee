/**
 * Loading ganfleet's optional N-API addons (native/*.c, built by `npm install` where a C compiler
 * is present; see native/build.mjs). Every addon has a JavaScript or tfjs fallback, so a missing
 * addon is never an error: the loader returns null with a code and a sentence saying why.
 *
 * An addon is used only when the `ABI` number it exports equals the one its JavaScript interface
 * declares: a .node left from an older checkout (or built from other sources) would otherwise
 * read its arguments with another layout, and give wrong weights rather than an error.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

/**
 * The `code` of an error an addon throws at a wrong call (native/ganfleet_napi.h): wrong argument
 * count or type (a TypeError), wrong length, size or code (a RangeError), a failed N-API call.
 */
export const NativeErrorCode = {
  ARG: 'ERR_NATIVE_ARG',
  RANGE: 'ERR_NATIVE_RANGE',
  NAPI: 'ERR_NATIVE_NAPI',
} as const;

/** Why an addon is not in use. */
export const AddonErrorCode = {
  /** GANFLEET_NATIVE=0. */
  OFF: 'ERR_NATIVE_OFF',
  /** No .node where the build puts it (no compiler, or the build failed). */
  MISSING: 'ERR_NATIVE_MISSING',
  /** The .node is there but does not load (wrong platform, missing library). */
  LOAD: 'ERR_NATIVE_LOAD',
  /** The .node was built from another interface version than this JavaScript's. */
  ABI: 'ERR_NATIVE_ABI',
} as const;

/** What the JavaScript side knows of an addon: its name, the ABI it was written for, its fallback. */
export interface AddonSpec {
  /** native/`name`.c, built into native/build/Release/`name`.node. */
  readonly name: string;
  /** The ABI number the addon must export (one per addon, next to its interface type). */
  readonly abi: number;
  /** What runs instead, for the error sentence: e.g. 'the JavaScript kernels'. */
  readonly fallback: string;
}

/** Why an addon did not load: a code to match on, and a sentence for the one log line. */
export type AddonFailure =
  | {
      code: (typeof AddonErrorCode)['OFF' | 'MISSING' | 'LOAD'];
      error: string;
    }
  | {
      code: (typeof AddonErrorCode)['ABI'];
      error: string;
      path: string;
      /** The ABI number the .node exports (null: none, built before ABI numbers). */
      found: number | null;
      expected: number;
    };

/** An addon, or null with the reason it did not load. */
export type Loaded<T> = { addon: T; code: ''; error: '' } | ({ addon: null } & AddonFailure);

const cache = new Map<string, Loaded<unknown>>();

/** Where `name`.node may have been built: the package root seen from dist/shared/ or from shared/. */
function candidates(name: string): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  return [join(here, '..', '..'), join(here, '..')].map((root) =>
    join(root, 'native', 'build', 'Release', `${name}.node`),
  );
}

function reason(err: unknown): string {
  return err instanceof Error ? (err.message.split('\n')[0] ?? '') : String(err);
}

/** One existing .node: the addon, or why it cannot be used. */
function open<T>(spec: AddonSpec, path: string): Loaded<T> {
  let mod: unknown;
  try {
    mod = createRequire(import.meta.url)(path);
  } catch (err) {
    return { addon: null, code: AddonErrorCode.LOAD, error: `${path}: ${reason(err)}; using ${spec.fallback}` };
  }
  const abi = (mod as { ABI?: unknown }).ABI;
  const found = typeof abi === 'number' ? abi : null;
  if (found === spec.abi) return { addon: mod as T, code: '', error: '' };
  return {
    addon: null,
    code: AddonErrorCode.ABI,
    path,
    found,
    expected: spec.abi,
    error:
      `${spec.name}.node ${found === null ? 'exports no ABI number' : `ABI ${found}`}, this JavaScript expects ` +
      `${spec.abi}: rebuild with npm rebuild / node native/build.mjs; using ${spec.fallback}`,
  };
}

function off<T>(spec: AddonSpec): Loaded<T> {
  return { addon: null, code: AddonErrorCode.OFF, error: `GANFLEET_NATIVE=0; using ${spec.fallback}` };
}

/** The first candidate that loads with the right ABI; else the first one's failure, else MISSING. */
function search<T>(spec: AddonSpec): Loaded<T> {
  let failure: Loaded<T> | undefined;
  for (const path of candidates(spec.name)) {
    if (!existsSync(path)) continue;
    const result = open<T>(spec, path);
    if (result.addon !== null) return result;
    failure ??= result;
  }
  return (
    failure ?? {
      addon: null,
      code: AddonErrorCode.MISSING,
      error: `${spec.name}.node not built (optional: see native/build.mjs); using ${spec.fallback}`,
    }
  );
}

/**
 * Loads native/build/Release/`spec.name`.node once per process and ABI number (a test passes a
 * wrong number to see the refusal). GANFLEET_NATIVE=0 in the environment turns every addon off at
 * run time too (the fallbacks then serve).
 */
export function loadAddon<T>(spec: AddonSpec): Loaded<T> {
  const key = `${spec.name}@${spec.abi}`;
  const hit = cache.get(key);
  if (hit) return hit as Loaded<T>;
  const result = process.env.GANFLEET_NATIVE === '0' ? off<T>(spec) : search<T>(spec);
  cache.set(key, result);
  return result;
}
