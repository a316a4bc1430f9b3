#!/usr/bin/env bash
# `make soak`: the long variants of the fault, crash, outage and random-I/O
# tests (S3BLK_SOAK=1: more data, more rounds, more operations), then every
# Go fuzz target for FUZZTIME each (default 5m). Too slow for `make test`,
# which runs the short variants and the fuzz seed corpora.
set -euo pipefail
cd "$(dirname "$0")/.."

export S3BLK_SOAK=1
TEST_FLAGS="-timeout 6h ${TEST_FLAGS:-}" scripts/test.sh

fuzztime=${FUZZTIME:-5m}
# Every `func FuzzX(` in a _test.go file, as "package-dir FuzzX".
grep -rl --include='*_test.go' '^func Fuzz' . | sort | while read -r file; do
	for name in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
		echo "== fuzz $(dirname "$file") $name for $fuzztime"
		go test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" "$(dirname "$file")"
	done
done
