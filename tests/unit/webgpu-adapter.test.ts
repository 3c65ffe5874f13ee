import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEVICE_MAX, describeAdapter, isSoftwareAdapter } from '../../worker/webgpu/adapter.js';

const swiftshader = {
  vendor: 'google',
  architecture: 'swiftshader',
  device: 'swiftshader-device-subzero-',
  description: 'SwiftShader driver 5.0.0',
  isFallbackAdapter: true,
};

test('CPU implementations of Vulkan are software adapters; a GPU is not', () => {
  assert.equal(isSoftwareAdapter(swiftshader), true);
  // Without WebGPU's fallback flag, the driver's name still gives it away.
  assert.equal(isSoftwareAdapter({ ...swiftshader, isFallbackAdapter: false }), true);
  assert.equal(
    isSoftwareAdapter({
      vendor: 'mesa',
      architecture: '',
      device: 'llvmpipe (LLVM 15.0.6, 256 bits)',
      description: '',
    }),
    true,
  );
  assert.equal(
    isSoftwareAdapter({ vendor: 'nvidia', architecture: 'hopper', device: '', description: 'NVIDIA H200' }),
    false,
  );
});

test('the adapter line: vendor, architecture, driver description (or device), and cpu emulation', () => {
  assert.equal(describeAdapter(swiftshader), 'google swiftshader (SwiftShader driver 5.0.0), cpu emulation');
  assert.equal(
    describeAdapter({ vendor: 'nvidia', architecture: 'hopper', device: 'NVIDIA H200', description: '' }),
    'nvidia hopper (NVIDIA H200)',
  );
  assert.equal(describeAdapter({ vendor: '', architecture: '', device: '', description: '' }), 'unknown adapter');
  const long = describeAdapter({ vendor: 'v', architecture: 'a', device: '', description: 'x'.repeat(300) });
  assert.equal(long.length, DEVICE_MAX);
  assert.ok(long.startsWith('v a (xxx') && long.endsWith('x…)'), long);
});
