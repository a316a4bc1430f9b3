# s3blk: see README.md. `make demo` and `make test` work on a fresh machine.
GO      ?= go
BIN     := bin/s3blk
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
SOURCES := $(shell find . -name '*.go' -not -path './.work/*') go.mod go.sum

.PHONY: all build deps test unit vet demo bench soak clean

all: build

$(BIN): $(SOURCES)
	$(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/s3blk

build: $(BIN)

# Debian packages (fuse3, e2fsprogs, rsync) and MinIO.
deps:
	scripts/install-deps.sh

vet:
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...

# Everything: installs dependencies, starts a private MinIO on 127.0.0.1,
# runs every unit and end-to-end test (real FUSE, loop devices, ext4, rsync).
test:
	scripts/test.sh

# The long variants: fault injection with more data, 25 crash rounds, longer
# random I/O, and every fuzz target for FUZZTIME (default 5m) each. Hours.
soak:
	scripts/soak.sh

# Unit tests only (no MinIO, no root needed).
unit:
	$(GO) test -count=1 ./crypto/ ./blockstore/ ./codec/ ./volume/ ./cache/ ./stream/ ./bench/ ./internal/faultproxy/ ./cmd/...

# The main job on a local-directory store: create, mount, mkfs.ext4, copy a
# tree in, show stats, unmount, remount and verify.
demo: deps build
	scripts/demo.sh

# Speed and memory side by side with s3backer, aws-cli and rclone, against
# the raw-S3 and local-disk ceilings, on a private MinIO (issue 6); writes
# BENCHMARKS.md. Quick mode: BENCH_SIZE=256M make bench. Needs root.
bench:
	scripts/bench.sh

clean:
	rm -rf bin .work
