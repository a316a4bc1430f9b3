#!/usr/bin/env bash
# `make test`: install what is missing, check formatting and vet, start a
# private MinIO on 127.0.0.1, and run every test (unit and end-to-end) with
# the race detector. MinIO is stopped by PID on exit, pass or fail.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
make --no-print-directory vet build

export S3BLK_MINIO_DIR=${TMPDIR:-/tmp}/s3blk-minio-test-$$
eval "$(scripts/minio.sh start)"
trap 'scripts/minio.sh stop' EXIT

export S3BLK_REQUIRE_MINIO=1
export S3BLK_BIN=$PWD/bin/s3blk
go test -race -count=1 -timeout 40m ${TEST_FLAGS:-} ./...
