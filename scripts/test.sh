#!/usr/bin/env bash
# `npm test`: build, prepare the machine (scripts/test-env.sh), then run every test/**/*.test.ts
# with node:test through tsx, one file at a time, in this order:
#   test/unit, any other folder (e.g. test/kernel), test/integration, test/e2e.
# Every group runs even when an earlier one failed; the exit status is non-zero if any failed.
# Optional arguments name test files to run instead of all of them (same order rules).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

npm run build --silent
# Tests run through tsx, which strips types without checking them: `npm run lint` checks them
# (tsc), the layer table of DESIGN.md (.dependency-cruiser.cjs: an import against it fails here)
# and exports or dependencies nobody uses (knip).
npm run --silent lint
bash scripts/test-env.sh

# The host has one plugin socket and one dockerd: test runs from several checkouts take turns.
exec 9>/run/lock/ledgernet-tests.lock
flock 9
# A run cut off mid-way (machine stopped, job cancelled) leaves its networks, containers, links and
# rules behind; remove them first so this run's leak checks see only what this run makes.
node --import tsx test/helpers/sweep.ts

files=()
if (($# > 0)); then
  files=("$@")
else
  mapfile -t files < <(find test -name '*.test.ts' -type f | LC_ALL=C sort)
fi
if ((${#files[@]} == 0)); then
  echo "test.sh: no test files found (find test -name '*.test.ts')" >&2
  exit 1
fi

unit=() other=() integration=() e2e=()
for f in "${files[@]}"; do
  case "${f#./}" in
    test/unit/*) unit+=("$f") ;;
    test/integration/*) integration+=("$f") ;;
    test/e2e/*) e2e+=("$f") ;;
    *) other+=("$f") ;;
  esac
done

failed=()
# Each group's output is also kept, so that a failure in an early group is printed again at the
# very end (its assertion and stack), where a CI log cut to its tail still shows it.
outdir=$(mktemp -d)
trap 'rm -rf "$outdir"' EXIT
run_group() {
  local name=$1
  shift
  (($# > 0)) || return 0
  echo "=== $name: $# file(s)"
  if ! node --import tsx --test --test-concurrency=1 --test-timeout=600000 --test-reporter=spec "$@" 2>&1 | tee "$outdir/$name"; then
    failed+=("$name")
  fi
}

run_group unit "${unit[@]}"
run_group other "${other[@]}"
run_group integration "${integration[@]}"
run_group e2e "${e2e[@]}"

if ((${#failed[@]} > 0)); then
  for name in "${failed[@]}"; do
    echo "=== $name failed; its failing tests again:"
    # node:test's spec reporter ends a run with "✖ failing tests:" and each failure in full.
    sed -n '/^✖ failing tests:/,$p' "$outdir/$name" | head -n 400
  done
  echo "test.sh: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "test.sh: all ${#files[@]} test file(s) passed"
