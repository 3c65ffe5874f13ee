#!/usr/bin/env bash
# The GPU figures for the webgpu backend, prepared for a session whose task is lent the GPU machine
# (an H200; see the device tool's notes). Not run by CI, and not run yet: no GPU machine was
# available when it was written. Two halves:
#
#   bash tests/bench/gpu-device.sh pack     # here, in the repository root: builds and packs what the
#                                           # GPU machine lacks into .gpu/ and .gl/ (git-ignored)
#   device run, carry [".gpu", ".gl"], timeout_s 600, command:
#     bash tests/bench/gpu-device.sh run
#
# `run` unpacks the Vulkan loader (.gl/*.deb, as the device notes say) and the bundle (Node, dist/,
# production node_modules with Dawn, the seed's seed_gan.py), prints the adapter the webgpu backend
# chose, then, in about 6 minutes: the worker-step bench at batch 128 and 1024 (webgpu against the
# seed's PyTorch loop on CUDA), and `ganfleet bench --workers 1,2,4 --backend webgpu`. Logs and
# bench.json/bench.md go to $OUT (the device tool brings them back).
set -euo pipefail
cd "$(dirname "$0")/../.."

pack() {
  npx tsc -p tsconfig.json
  # Vulkan's loader and GL vendor libraries, as the device notes list them for Vulkan and EGL.
  rm -rf .gl && mkdir -p .gl /tmp/amd64/partial
  local o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
  apt-get "${o[@]}" update -qq
  (cd .gl && apt-get "${o[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
  # Production dependencies without the optional ones (tfjs-node-gpu needs CUDA 11.2, absent there),
  # then the two webgpu packages; Dawn for linux-x64 only.
  local list
  list=$(mktemp)
  npm ls --omit=dev --omit=optional --all --parseable | tail -n +2 | sed "s|^$PWD/||" >"$list"
  printf '%s\n' node_modules/webgpu node_modules/@tensorflow/tfjs-backend-webgpu >>"$list"
  local seed=../shared/seed/seed_gan.py
  [ -f "$seed" ] || { echo "gpu-device.sh: $seed not found" >&2; exit 1; }
  local stage
  stage=$(mktemp -d)
  mkdir -p "$stage/bin" "$stage/seed"
  cp "$(command -v node)" "$stage/bin/node"
  cp "$seed" "$stage/seed/"
  rm -rf .gpu && mkdir -p .gpu
  tar -c --exclude='node_modules/webgpu/dist/darwin-*' --exclude='node_modules/webgpu/dist/win32-*' \
    --exclude='node_modules/webgpu/dist/linux-arm64' --exclude='*.map' \
    -f - dist native/build package.json -T "$list" -C "$stage" bin seed | xz -T0 -6 >.gpu/bundle.tar.xz
  rm -rf "$stage" "$list"
  du -ch .gpu/* .gl/* | tail -n 1
  echo "device run: carry [\".gpu\", \".gl\"], command: bash tests/bench/gpu-device.sh run"
}

run() {
  [ -d "${OUT:-}" ] || { echo "gpu-device.sh run: \$OUT is not set (run it through the device tool)" >&2; exit 1; }
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  tar -xJf .gpu/bundle.tar.xz
  mkdir -p .gpu/bin && mv bin/node .gpu/bin/node && rmdir bin
  export PATH="$PWD/.gpu/bin:$PATH" GANFLEET_SEED_GAN="$PWD/seed/seed_gan.py"
  # The NVIDIA ICD where the loader would not look (the device notes' path).
  local icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  if [ -f "$icd" ] && ! ls /etc/vulkan/icd.d/*.json /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1; then
    export VK_DRIVER_FILES="$icd" VK_ICD_FILENAMES="$icd"
  fi
  set -x
  {
    nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
    node --version
    python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0))' || true
  } 2>&1 | tee "$OUT/env.txt"
  # The adapter the webgpu backend takes, as a worker logs it (auto must choose it too: a GPU).
  node --input-type=module -e "
    const { selectBackend } = await import('./dist/worker/backend.js');
    const named = await selectBackend('webgpu');
    const auto = await selectBackend('auto');
    console.log(JSON.stringify({ named, auto }));" 2>&1 | tee "$OUT/adapter.txt"
  for batch in 128 1024; do
    timeout 150 node dist/tests/bench/worker-step.js --configs webgpu --batch "$batch" --steps 100 --repeats 3 \
      --warmup 10 --profile-steps 3 --torch-device cuda --python python3 2>&1 |
      tee "$OUT/worker-step-$batch.txt" || true
  done
  timeout 150 node dist/cli/main.js bench --workers 1,2,4 --backend webgpu --steps 20 --warmup 3 \
    --out "$OUT/bench" 2>&1 | tee "$OUT/bench.txt" || true
  set +x
  grep -h -E '^(RATIO|webgpu|PyTorch seed)' "$OUT"/worker-step-*.txt || true
}

case "${1:-}" in
  pack) pack ;;
  run) run ;;
  *)
    echo "usage: bash tests/bench/gpu-device.sh pack|run" >&2
    exit 2
    ;;
esac
