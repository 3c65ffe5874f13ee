/**
 * Loading ganfleet's optional N-API addons (native/*.c, built by `npm install` where a C compiler
 * is present; see native/build.mjs). Every addon has a JavaScript or tfjs fallback, so a missing
 * addon is never an error: the loader returns null and says why.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

/** An addon, or null with the reason it did not load. */
export type Loaded<T> = { addon: T; error: '' } | { addon: null; error: string };

const cache = new Map<string, Loaded<unknown>>();

/** Where `name`.node may have been built: the package root seen from dist/shared/ or from shared/. */
function candidates(name: string): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  return [join(here, '..', '..'), join(here, '..')].map((root) =>
    join(root, 'native', 'build', 'Release', `${name}.node`),
  );
}

/**
 * Loads native/build/Release/`name`.node once per process. GANFLEET_NATIVE=0 in the environment
 * turns every addon off at run time too (the fallbacks then serve).
 */
export function loadAddon<T>(name: string): Loaded<T> {
  const hit = cache.get(name);
  if (hit) return hit as Loaded<T>;
  let result: Loaded<T>;
  if (process.env.GANFLEET_NATIVE === '0') {
    result = { addon: null, error: 'GANFLEET_NATIVE=0' };
  } else {
    const require = createRequire(import.meta.url);
    const tried: string[] = [];
    result = { addon: null, error: 'no candidate path' };
    for (const path of candidates(name)) {
      if (!existsSync(path)) {
        tried.push(`${path}: not built`);
        continue;
      }
      try {
        result = { addon: require(path) as T, error: '' };
        break;
      } catch (err) {
        tried.push(`${path}: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
      }
    }
    if (result.addon === null && tried.length > 0) result = { addon: null, error: tried[0]! };
  }
  cache.set(name, result);
  return result;
}

/**
 * glibc: large allocations (model-sized messages, ≈ 1.1 MB each) are served from the heap and
 * freed memory is kept for reuse, instead of a fresh mapping (and its page faults) each time
 * (native/ganfleet_reduce.c). Process-wide; false where the addon is not built or off glibc.
 */
export function keepFreedMemory(): boolean {
  return loadAddon<{ keepFreedMemory(): boolean }>('ganfleet_reduce').addon?.keepFreedMemory() ?? false;
}
