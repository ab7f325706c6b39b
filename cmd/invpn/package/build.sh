#!/usr/bin/env bash
# Builds the invpn Debian package: bash cmd/invpn/package/build.sh [OUTDIR]
# (default: dist/). It holds the binary (/usr/bin/invpn), the systemd unit
# (/lib/systemd/system/invpn.service), the commented sample configuration
# as /etc/invpn/invpn.conf (kept on upgrade), the README and every
# command's --help (/usr/share/doc/invpn/reference.txt). nfpm runs as a Go
# tool of this module (go.mod's tool line): nothing is downloaded but Go
# modules.
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=${1:-dist}
mkdir -p "$out"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT

version=${INVPN_VERSION:-0.0.0+$(git rev-parse --short=12 HEAD 2>/dev/null || echo dev)}
CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=$version" -o "$stage/invpn" ./cmd/invpn
cp cmd/invpn/invpn.service "$stage/invpn.service"
cp cmd/invpn/invpn.conf.sample "$stage/invpn.conf"
cp README.md "$stage/README.md"
# The binary embeds the live map's graph library: its licence goes too.
{
  cat LICENSE
  printf '\n\nThe live map (/map/) embeds cytoscape.js 3.35.0, under this licence:\n\n'
  cat cmd/invpn/internal/meshmap/static/vendor/cytoscape.LICENSE
} > "$stage/copyright"
{
  echo "invpn $version: the reference of every command (invpn CMD --help)"
  echo
  "$stage/invpn" --help 2>&1 || true
  for cmd in run status health ca cert sim demo; do
    echo
    echo "================ invpn $cmd ================"
    "$stage/invpn" "$cmd" --help 2>&1 || true
  done
} > "$stage/reference.txt"

# nfpm expands the environment in some fields only: fill in the paths here.
sed -e "s|\${INVPN_STAGE}|$stage|g" -e "s|\${INVPN_VERSION}|$version|g" \
  cmd/invpn/package/nfpm.yaml > "$stage/nfpm.yaml"
go tool nfpm package --config "$stage/nfpm.yaml" --packager deb --target "$out/"
ls "$out"/invpn_*.deb
