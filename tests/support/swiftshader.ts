/**
 * The Vulkan driver the webgpu tests run on: SwiftShader, the CPU implementation of Vulkan that
 * Debian's `chromium` package ships (CI installs chromium for the dashboard test, and libvulkan1).
 * Dawn refuses Mesa's lavapipe on Debian 12, so without this the tests would find no adapter.
 *
 * A test that needs webgpu calls `useSwiftShader()` before the backend loads (the Vulkan loader
 * reads the variable when Dawn creates its instance) or passes `swiftShaderEnv()` to a child
 * process. Missing SwiftShader is an error, never a skip: CI must run these tests.
 */
import { existsSync } from 'node:fs';
import { CHROMIUM_SWIFTSHADER_ICD } from '../../worker/webgpu/backend.js';

/** VK_ICD_FILENAMES for SwiftShader (an ICD already chosen in the environment is kept). */
export function swiftShaderEnv(): { VK_ICD_FILENAMES: string } {
  const icd = process.env.VK_ICD_FILENAMES ?? CHROMIUM_SWIFTSHADER_ICD;
  if (!existsSync(icd))
    throw new Error(`no Vulkan ICD at ${icd}: install Debian's chromium package (it ships SwiftShader) and libvulkan1`);
  return { VK_ICD_FILENAMES: icd };
}

/** Points this process's Vulkan loader at SwiftShader; call before the first webgpu backend load. */
export function useSwiftShader(): void {
  process.env.VK_ICD_FILENAMES = swiftShaderEnv().VK_ICD_FILENAMES;
}
