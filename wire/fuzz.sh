#!/usr/bin/env bash
# Fuzz every fuzz target of the module for a given time each.
#
#   bash wire/fuzz.sh [TIME] [PACKAGES...]
#
# TIME is a go test -fuzztime value (default 1m: "30s", "10m", "1h", or
# "100000x" for a number of executions); PACKAGES default to ./... . The
# targets are found with `go test -list 'Fuzz.*'` in each package, then
# fuzzed one at a time (go test fuzzes one target of one package per run).
# Each target's line gives its executions and new corpus entries; a target
# that fails leaves its crasher in the package's testdata/fuzz/NAME/
# (commit it: it then runs as a seed with the ordinary tests), and the
# script exits 1 after the last target. Interesting inputs found along the
# way stay in the Go build cache ($(go env GOCACHE)/fuzz), not in the tree.
set -uo pipefail
cd "$(dirname "$0")/.."

fuzztime=${1:-1m}
shift || true
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./...)

module=$(go list -m)
logdir=$(mktemp -d "${TMPDIR:-/tmp}/invpn-fuzz-XXXXXX")
failed=()
total=0
start=$(date +%s)
printf '%-44s %-26s %14s %8s  %s\n' PACKAGE TARGET EXECS NEW RESULT
for pkg in $(go list "${pkgs[@]}"); do
  targets=$(go test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true)
  for name in $targets; do
    total=$((total + 1))
    log="$logdir/$(echo "$pkg" | tr '/' '_')_$name.log"
    go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg" >"$log" 2>&1
    rc=$?
    # The last progress line: "fuzz: elapsed: 5s, execs: 123456 (24691/sec), new interesting: 3 (total: 40)".
    execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | awk '{print $2}')
    new=$(grep -o 'new interesting: [0-9]*' "$log" | tail -1 | awk '{print $3}')
    result=ok
    if [ $rc -ne 0 ]; then
      result="FAILED (log $log)"
      crasher=$(grep -o 'testdata/fuzz/[^ ]*' "$log" | tail -1)
      [ -n "$crasher" ] && result="FAILED: crasher $(go list -f '{{.Dir}}' "$pkg")/$crasher"
      failed+=("$pkg $name")
    fi
    printf '%-44s %-26s %14s %8s  %s\n' "${pkg#"$module"/}" "$name" "${execs:-?}" "${new:-?}" "$result"
  done
done
echo "$total targets, $fuzztime each, in $(( $(date +%s) - start ))s; logs in $logdir"
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed: ${failed[*]}"
  exit 1
fi
rm -rf "$logdir"
