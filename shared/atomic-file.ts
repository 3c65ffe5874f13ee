import { randomBytes } from 'node:crypto';
import { type FileHandle, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Writes `data` to `path` so that readers see either the old file or the complete new one, never
 * a torn write: the bytes go to a temporary file in the same folder (rename is only atomic within
 * one file system), that file is fsynced, renamed over `path`, and the folder is fsynced so the
 * rename itself survives a crash. The parent folder must exist. On failure the temporary file is
 * removed and the original error is rethrown.
 */
export async function writeFileAtomic(path: string, data: Uint8Array): Promise<void> {
  const dir = dirname(path);
  // Leading dot keeps half-written files out of globs such as `*.safetensors`.
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let renamed = false;
  try {
    const fh = await open(tmp, 'wx');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    renamed = true;
    await syncFolder(dir);
  } catch (err) {
    if (!renamed) await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/** Fsyncs a folder's entry table; platforms that cannot open or sync folders (Windows) are skipped. */
async function syncFolder(dir: string): Promise<void> {
  let fh: FileHandle;
  try {
    fh = await open(dir, 'r');
  } catch (err) {
    if (isCode(err, 'EISDIR') || isCode(err, 'EPERM') || isCode(err, 'EACCES')) return;
    throw err;
  }
  try {
    await fh.sync();
  } catch (err) {
    if (!(isCode(err, 'EINVAL') || isCode(err, 'EPERM') || isCode(err, 'ENOTSUP'))) throw err;
  } finally {
    await fh.close();
  }
}

function isCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}
