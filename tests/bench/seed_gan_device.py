# Runs the seed's timed PyTorch loop (../shared/seed/seed_gan.py, not copied here) on another torch
# device, for tests/bench/worker-step.ts --torch-device cuda: the GPU figure that ganfleet's webgpu
# worker is compared with. The seed script is CPU-only; this applies three exact text changes and
# runs it, refusing to run if any of them no longer matches:
#   - every tensor the loop makes (models, noise, labels, the permutation) goes to DEVICE
#     (torch.set_default_device, PyTorch >= 2.0);
#   - the preloaded MNIST tensor is moved there too (so --preload is required);
#   - the clock is read after the GPU has finished (CUDA runs asynchronously).
# Usage: python3 seed_gan_device.py SEED_GAN_PY DEVICE [seed_gan.py options, with --preload]
import sys
import pathlib

import torch

script, device, args = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
if "--preload" not in args:
    sys.exit("seed_gan_device.py: pass --preload (the DataLoader path makes CPU tensors)")
src = script.read_text()
sync = "torch.cuda.synchronize()" if device.startswith("cuda") else "pass"
patches = [
    ("torch.manual_seed(a.seed)\n", f"torch.manual_seed(a.seed)\ntorch.set_default_device({device!r})\n"),
    ("x = ds.data.float()", f"x = ds.data.to({device!r}).float()"),
    ("    dt = time.perf_counter() - t0\n", f"    {sync}\n    dt = time.perf_counter() - t0\n"),
]
if device == "cpu" and not hasattr(torch, "set_default_device"):
    patches[0] = ("torch.manual_seed(a.seed)\n", "torch.manual_seed(a.seed)\n")  # old PyTorch: CPU anyway
for old, new in patches:
    if src.count(old) != 1:
        sys.exit(f"seed_gan_device.py: {script} changed; cannot find exactly one {old.strip()!r}")
    src = src.replace(old, new)
print(f"seed_gan_device.py: running {script} on {device}", flush=True)
sys.argv = [str(script), *args]
exec(compile(src, str(script), "exec"), {"__name__": "__main__"})
