#!/usr/bin/env bash
# `make bench` (issue 6): s3blk side by side with s3backer, aws-cli and
# rclone, and against the raw-S3 and local-disk ceilings, all on a private
# MinIO on 127.0.0.1 with the same settings (1 MiB blocks, 256 MiB cache, 16
# upload threads). Every workload runs BENCH_RUNS times per tool; the report
# (medians, min-max, ratios, peak RSS, versions) goes to BENCHMARKS.md.
# bench/ is the Go half: the ceiling, a request-counting proxy, the scale
# fixture and the report.
#
# Environment:
#   BENCH_SIZE=1G            data per workload; quick mode: BENCH_SIZE=256M
#   BENCH_RUNS=3             runs per workload and tool
#   BENCH_FIO_SECONDS        runtime of each fio job (default 10; 5 below 1G)
#   BENCH_SCALE_BLOCKS       blocks in the sparse 1 TiB volume (default 100000; 20000 below 1G)
#   BENCH_ONLY               a subset of: ceiling block stream mem scale requests crash
#   BENCH_OUT                the report (default BENCHMARKS.md at the repo root)
#   S3BLK                    the s3blk binary (default: `make build`, bin/s3blk)
#   BENCH_WORK               the work directory (default: a new one under $TMPDIR or /tmp)
#
# Needs root (FUSE, loop devices, drop_caches). Everything it mounts, loops
# or starts lives under one work directory and is cleaned up on exit, pass
# or fail; the work directory is kept on failure for its logs.
set -Eeuo pipefail
export LC_ALL=C # a "." in $EPOCHREALTIME and in printed numbers
cd "$(dirname "$0")/.."
REPO=$PWD
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root (FUSE, loop devices, drop_caches)" >&2; exit 1; }

# ---------------------------------------------------------------- settings
SIZE_SPEC=${BENCH_SIZE:-1G}
RUNS=${BENCH_RUNS:-3}
ONLY=${BENCH_ONLY:-ceiling block stream mem scale requests crash}
OUT=${BENCH_OUT:-$REPO/BENCHMARKS.md}
CACHE_MIB=256
THREADS=16

to_mib() { # 256M, 1G, 2048K -> MiB
	local s=${1^^}
	s=${s%IB}; s=${s%B}
	case $s in
	*K) echo $((${s%K} / 1024)) ;;
	*M) echo $((${s%M})) ;;
	*G) echo $((${s%G} * 1024)) ;;
	*T) echo $((${s%T} * 1024 * 1024)) ;;
	*) echo $((s / 1048576)) ;;
	esac
}
SIZE_MIB=$(to_mib "$SIZE_SPEC")
((SIZE_MIB >= 16)) || { echo "bench: BENCH_SIZE=$SIZE_SPEC is too small (at least 16M)" >&2; exit 2; }
if ((SIZE_MIB >= 1024)); then
	FIO_SECONDS=${BENCH_FIO_SECONDS:-10}
	SCALE_BLOCKS=${BENCH_SCALE_BLOCKS:-100000}
else
	FIO_SECONDS=${BENCH_FIO_SECONDS:-5}
	SCALE_BLOCKS=${BENCH_SCALE_BLOCKS:-20000}
fi
VOL_MIB=$((2 * SIZE_MIB + 2048))                        # holds the dd file, the Go tree and slack
WARM_MIB=$((SIZE_MIB / 2 < 128 ? SIZE_MIB / 2 : 128)) # fio's warm region fits the cache
MEM_SMALL_MIB=256                                      # stream memory: 256 MiB vs 4 GiB (1 GiB in quick mode)
MEM_LARGE_MIB=$((SIZE_MIB * 4 > 1024 ? SIZE_MIB * 4 : 1024))
GOSRC=$(go env GOROOT)/src
AWS=/usr/bin/aws # Debian's aws-cli v2, not a pip or pyenv one earlier on PATH
BUCKET=bench

human() { # MiB -> 256M / 1G
	if (($1 % 1024 == 0)); then echo "$(($1 / 1024))G"; else echo "${1}M"; fi
}

# ---------------------------------------------------------------- state
WORK=${BENCH_WORK:-${TMPDIR:-/tmp}/s3blk-bench-$$}
rm -rf "$WORK"
mkdir -p "$WORK/logs" "$WORK/mnt"
LOGS=$WORK/logs
RESULTS=$WORK/results.tsv
META=$WORK/meta.tsv
PIDS=$WORK/pids # "pid comm" of every daemon we started
: >"$RESULTS"
: >"$META"
: >"$PIDS"
export S3BLK_MINIO_DIR=$WORK/minio # always our own MinIO: cleanup stops it and deletes its data
SRC=/dev/shm/s3blk-bench-$$.data # the random data, generated once (not timed)
[ -d /dev/shm ] || SRC=$WORK/data
OK=0

log() { printf 'bench: [%s] %s\n' "$(date +%T)" "$*" >&2; }
rec() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; } # section tool metric run value
na() { rec "$1" "$2" na - "$3"; }
note() { rec "$1" "$2" note - "$3"; }
meta() { printf '%s\t%s\n' "$1" "$2" >>"$META"; }
want() { [[ " $ONLY " == *" $1 "* ]]; }
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }
elapsed_since() { calc "$EPOCHREALTIME - $1"; }
track() { echo "$1 $2" >>"$PIDS"; } # pid comm

# ---------------------------------------------------------------- cleanup
# Unmounts everything under $WORK (ext4 first, then FUSE), detaches loop
# devices backed by files under $WORK, stops the daemons we started (by PID,
# checking the PID is still ours), stops MinIO, removes the random data.
our_mounts() { awk -v w="$WORK/" 'index($2, w) == 1 { print $2, $3 }' /proc/mounts | sort -r; }

cleanup() {
	local rc=$?
	set +eu
	trap - ERR
	local mnt type dev pid comm
	for pass in ext4 fuse; do
		while read -r mnt type; do
			[ -n "$mnt" ] || continue
			if [ "$pass" = ext4 ] && [[ $type != fuse* ]]; then
				timeout 120 umount "$mnt" 2>/dev/null || umount -l "$mnt"
			elif [ "$pass" = fuse ] && [[ $type == fuse* ]]; then
				[ "$type" = fuse.s3blk ] && timeout 300 "$S3BLK" umount "$mnt" 2>/dev/null
				mountpoint -q "$mnt" && { timeout 30 fusermount -u "$mnt" 2>/dev/null || umount -l "$mnt"; }
			fi
		done < <(our_mounts)
	done
	while read -r dev; do
		losetup -d "$dev" 2>/dev/null
	done < <(losetup -nl -O NAME,BACK-FILE 2>/dev/null | awk -v w="$WORK/" 'index($2, w) == 1 { print $1 }')
	while read -r pid comm; do
		[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] || continue
		kill "$pid" 2>/dev/null
		for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
		[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] && kill -9 "$pid"
	done <"$PIDS"
	"$REPO/scripts/minio.sh" stop >/dev/null 2>&1
	rm -f "$SRC"
	if ((OK)); then
		rm -rf "$WORK"
	else
		[ -s "$RESULTS" ] && "$BENCH" report -results "$RESULTS" -meta "$META" -out "$WORK/BENCHMARKS.partial.md" 2>/dev/null
		log "FAILED (exit $rc); logs and partial results (BENCHMARKS.partial.md) are in $WORK"
		((rc)) || rc=1
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
trap 'log "command failed (line $LINENO): $BASH_COMMAND"' ERR

# ---------------------------------------------------------------- setup
log "installing what is missing (peers from Debian, MinIO)"
EXTRA_PACKAGES="s3backer awscli rclone fio time" scripts/install-deps.sh
if [ -z "${S3BLK:-}" ]; then
	make --no-print-directory build >&2
	S3BLK=$REPO/bin/s3blk
fi
S3BLK=$(realpath "$S3BLK")
S3BLK_COMM=$(basename "$S3BLK" | cut -c1-15) # its daemon's /proc/PID/comm
BENCH=$WORK/s3blk-bench
go build -o "$BENCH" ./bench

log "starting MinIO"
minio_env=$(scripts/minio.sh start)
eval "$minio_env"
export AWS_EC2_METADATA_DISABLED=true
# MinIO here is plain HTTP; an AWS_CA_BUNDLE from the environment only makes
# rclone refuse to start ("LoadCustomCABundleError"), so no tool gets one.
unset AWS_CA_BUNDLE
MINIO_EP=$AWS_ENDPOINT_URL_S3
ENDPOINT=$MINIO_EP # what the tools talk to; the requests suite points it at the proxy
"$BENCH" mkbucket "$BUCKET"

# aws-cli and rclone: same concurrency as everyone, configured by files and
# environment that only this run sees.
export AWS_CONFIG_FILE=$WORK/aws.conf AWS_SHARED_CREDENTIALS_FILE=$WORK/aws.credentials
printf '[default]\nregion = us-east-1\ns3 =\n  max_concurrent_requests = %d\n' "$THREADS" >"$AWS_CONFIG_FILE"
: >"$AWS_SHARED_CREDENTIALS_FILE"
export RCLONE_CONFIG=$WORK/rclone.conf
: >"$RCLONE_CONFIG"
export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Minio RCLONE_CONFIG_BENCH_ENV_AUTH=false
export RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
export RCLONE_CONFIG_BENCH_ENDPOINT=$MINIO_EP RCLONE_CONFIG_BENCH_REGION=us-east-1

# s3blk: encryption needs a passphrase; the default codec is what we measure.
head -c 32 /dev/urandom | base64 >"$WORK/passphrase"
chmod 600 "$WORK/passphrase"
export S3BLK_PASSPHRASE_FILE=$WORK/passphrase
HAVE_CODEC=0 HAVE_STREAM=0
create_help=$("$S3BLK" create --help 2>&1 || true)
[[ $create_help == *no-encryption* ]] && HAVE_CODEC=1
"$S3BLK" put --help >/dev/null 2>&1 && HAVE_STREAM=1
PLAIN_CREATE=(--no-encryption)
[[ $create_help == *no-compression* ]] && PLAIN_CREATE+=(--no-compression)
PLAIN_STREAM=(--no-encryption --no-compression)
NOT_BUILT="not built yet in this s3blk"

log "generating $SIZE_MIB MiB of random data (not timed)"
"$BENCH" gen "${SIZE_MIB}M" >"$SRC"

# ---------------------------------------------------------------- metadata
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta machine "$(nproc) CPUs (${cpu:-unknown}), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r); MinIO on 127.0.0.1 on the same machine, data on $(df --output=source "$WORK" | tail -1)"
meta size "$(human "$SIZE_MIB")"
meta runs "$RUNS (the crash too; the scale fixture and the request count: one run each, the scale mount $RUNS times)"
meta cache_mib "$CACHE_MIB"
meta mem_small "$(human "$MEM_SMALL_MIB")"
meta mem_large "$(human "$MEM_LARGE_MIB")"
meta setting "Every tool: 1 MiB blocks, a $CACHE_MIB MiB cache, $THREADS upload threads (or requests in flight)."
meta setting "s3blk: \`create --block-size 1M\` (default codec: encryption + compression); plain: \`create ${PLAIN_CREATE[*]}\`; \`mount --cache-size ${CACHE_MIB}M --uploaders $THREADS\`; streams: \`put|get --concurrency $THREADS\` (default chunk size), plain: \`${PLAIN_STREAM[*]}\`."
meta setting "s3backer: \`--blockSize=1M --blockCacheSize=$CACHE_MIB --blockCacheThreads=$THREADS --listBlocks\`, other options default (write delay 250 ms, no --directIO); \`--region\` is left out because it forces virtual-host URLs, which MinIO on an IP cannot serve."
meta setting "aws: Debian's aws-cli (\`$AWS\`), \`s3.max_concurrent_requests = $THREADS\`, default 8 MiB parts; rclone: \`rcat --s3-upload-concurrency $THREADS\` (default 5 MiB chunks), \`cat\` (a single stream; rclone has no parallel cat)."
meta setting "ext4: \`mkfs.ext4 -E lazy_itable_init=1,lazy_journal_init=1,nodiscard\`, \`mount -o loop,noinit_itable\` (no background inode-table zeroing during the runs); volume $(human "$VOL_MIB")."
meta setting "Cold means: unmount everything, \`echo 3 > /proc/sys/vm/drop_caches\`, remount. rsync is followed by \`sync -f\` on the filesystem (syncfs: an fsync of the file underneath)."
meta setting "fio: 4 KiB blocks, libaio, iodepth 16, O_DIRECT, ${FIO_SECONDS} s time-based per job, on the file written by dd; warm = its first $WARM_MIB MiB, read once before; cold = the whole file, after a cold remount."
meta setting "Ceiling: bench/ (aws-sdk-go-v2, the transport settings of s3blk's store), $THREADS requests in flight, 1 MiB objects; GET right after the PUT (from MinIO's page cache) and again after \`drop_caches\` (from its disk, as in every cold read); local ext4 = the same block workloads on a loop file on the local disk."
meta setting "Requests: counted by a proxy (bench/) between the tool and MinIO, over one write of $(human "$SIZE_MIB") (create or first mount, mkfs, dd, unmount) and one cold read (mount, cat, unmount), scaled to 1 GiB."
meta setting "Scale: \`s3blk create --size 1T\`, then $SCALE_BLOCKS blocks spread evenly over it, stored through the volume package by bench/ (valid, mostly-zero blocks); mount with a cold page cache."
meta setting "Peak RSS: VmHWM of the daemon just before unmount; \`/usr/bin/time\` max RSS of stream clients."
meta version "s3blk: $("$S3BLK" version 2>&1 | sed -n 1p) ($S3BLK)"
meta version "s3backer: $(s3backer --version 2>&1 | sed -n 1p)"
meta version "aws: $("$AWS" --version 2>&1 | sed -n 1p)"
meta version "rclone: $(rclone version 2>/dev/null | sed -n 1p)"
meta version "fio: $(fio --version)"
meta version "MinIO: $(go version -m "$(go env GOPATH)/bin/minio" | awk '$1 == "mod" { print $2, $3 }')"
meta version "$(go version)"
meta version "e2fsprogs: $(mkfs.ext4 -V 2>&1 | sed -n 1p)"
meta version "kernel: $(uname -srv)"
if ((HAVE_CODEC)); then
	meta label:s3blk "**s3blk** (encrypted + compressed)"
else
	meta label:s3blk "**s3blk** (no encryption or compression in this build)"
fi
((HAVE_CODEC)) || meta note "Encryption and compression are $NOT_BUILT: \`s3blk\` rows are unencrypted, plain rows and codec targets are n/a."
((HAVE_STREAM)) || meta note "Stream mode (\`s3blk put\`/\`get\`) is $NOT_BUILT: its rows are n/a."

# ---------------------------------------------------------------- helpers
drop_caches() { echo 3 >/proc/sys/vm/drop_caches; }

# du PREFIX -> bytes stored under it
stored_bytes() { "$BENCH" du -bucket "$BUCKET" -prefix "$1" | awk '{ print $2 }'; }

hwm_mib() { awk '/^VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }

# A block "tool" is set up by vol_create, then fuse_up / fuse_down (the
# FUSE file, or nothing for local) and fs_up / fs_down (ext4 on a loop
# device). They set: FILE (the disk), MNT, FS, DPID (daemon PID), PREFIX.
vol_create() { # tool id
	local tool=$1 id=$2
	MNT=$WORK/mnt/$id-fuse FS=$WORK/mnt/$id-fs DPID="" PREFIX=vol/$id
	mkdir -p "$MNT" "$FS"
	case $tool in
	local)
		FILE=$WORK/$id.img
		truncate -s "${VOL_MIB}M" "$FILE"
		;;
	s3blk | s3blk-plain)
		local flags=()
		[ "$tool" = s3blk-plain ] && flags=("${PLAIN_CREATE[@]}")
		AWS_ENDPOINT_URL_S3=$ENDPOINT "$S3BLK" create "s3://$BUCKET/$PREFIX" --size "${VOL_MIB}M" --block-size 1M "${flags[@]}" \
			>>"$LOGS/$id.create" 2>&1
		FILE=$MNT/file
		;;
	s3backer) FILE=$MNT/file ;;
	esac
	TOOL=$tool
}

fuse_up() { # [--force]
	local force=${1:-}
	case $TOOL in
	local) ;;
	s3blk | s3blk-plain)
		local out=$LOGS/${MNT##*/}.mount
		AWS_ENDPOINT_URL_S3=$ENDPOINT "$S3BLK" mount "s3://$BUCKET/$PREFIX" "$MNT" --cache-size "${CACHE_MIB}M" \
			--uploaders "$THREADS" --log-file "$LOGS/${MNT##*/}.log" ${force:+"$force"} 2>"$out"
		DPID=$(grep -o 'daemon pid [0-9]*' "$out" | awk '{ print $3 }')
		[ -n "$DPID" ] || { cat "$out" >&2; return 1; }
		track "$DPID" "$S3BLK_COMM"
		;;
	s3backer)
		s3backer --blockSize=1M --size="${VOL_MIB}M" --blockCacheSize="$CACHE_MIB" --blockCacheThreads="$THREADS" \
			--listBlocks --prefix="$PREFIX/" --baseURL="$ENDPOINT/" --accessId="$AWS_ACCESS_KEY_ID" \
			--accessKey="$AWS_SECRET_ACCESS_KEY" ${force:+"$force"} -f "$BUCKET" "$MNT" >>"$LOGS/${MNT##*/}.s3backer" 2>&1 &
		DPID=$!
		disown "$DPID" # no "Killed" message from bash when the crash test kills it
		track "$DPID" s3backer
		for _ in $(seq 1 600); do
			[ -e "$MNT/file" ] && return 0
			kill -0 "$DPID" 2>/dev/null || break
			sleep 0.1
		done
		log "s3backer did not mount; its log:"
		cat "$LOGS/${MNT##*/}.s3backer" >&2
		return 1
		;;
	esac
}

# fuse_down stores everything (s3blk umount waits for it; s3backer keeps
# uploading after the FUSE unmount, so we wait for its process to exit).
fuse_down() {
	case $TOOL in
	local) ;;
	s3blk | s3blk-plain) timeout 900 "$S3BLK" umount "$MNT" ;;
	s3backer)
		fusermount -u "$MNT"
		for _ in $(seq 1 9000); do kill -0 "$DPID" 2>/dev/null || return 0; sleep 0.1; done
		log "s3backer $DPID did not exit within 15 minutes of its unmount"
		return 1
		;;
	esac
}

mkfs_vol() { mkfs.ext4 -q -F -E lazy_itable_init=1,lazy_journal_init=1,nodiscard "$FILE"; }
fs_up() { mount -o loop,noinit_itable "$FILE" "$FS"; }
fs_down() { # the loop device lets go of the file before the FUSE unmount
	umount "$FS"
	for _ in $(seq 1 100); do
		losetup -nl -O BACK-FILE | awk -v f="$FILE" '$0 == f { busy = 1 } END { exit !busy }' || return 0
		sleep 0.1
	done
}

vol_destroy() {
	case $TOOL in
	local) rm -f "$FILE" ;;
	*) "$BENCH" rm -bucket "$BUCKET" -prefix "$PREFIX/" ;;
	esac
	rmdir "$MNT" "$FS"
}

remount_cold() {
	fs_down
	fuse_down
	drop_caches
	fuse_up
	fs_up
}

# The daemon died under a mounted filesystem: take the dead stack apart.
teardown_dead() {
	timeout 60 umount "$FS" 2>/dev/null || umount -l "$FS"
	local dev
	while read -r dev; do losetup -d "$dev" 2>/dev/null || true; done \
		< <(losetup -nl -O NAME,BACK-FILE | awk -v f="$FILE" '$2 == f { print $1 }')
	if mountpoint -q "$MNT" 2>/dev/null || grep -q " $MNT " /proc/mounts; then
		fusermount -uz "$MNT" 2>/dev/null || umount -l "$MNT"
	fi
}

run_fio() { # section tool run rw region_mib_or_empty
	local section=$1 tool=$2 run=$3 rw=$4 size=$5 out=$LOGS/fio-$1-$2-$3.json
	local sizearg=()
	[ -n "$size" ] && sizearg=(--size="${size}M")
	if timeout $((FIO_SECONDS + 300)) fio --name="$section" --filename="$FS/data" --rw="$rw" --bs=4k --direct=1 \
		--ioengine=libaio --iodepth=16 "${sizearg[@]}" --time_based --runtime="$FIO_SECONDS" \
		--output-format=json --output="$out" >/dev/null 2>>"$LOGS/fio.err"; then
		local iops
		iops=$("$BENCH" fio-iops "$out")
		rec "$section" "$tool" value "$run" "$iops"
		log "$section $tool run $run: $iops IOPS"
	else
		na "$section" "$tool" "fio failed (see logs)"
		log "$section $tool run $run: fio FAILED"
	fi
}

# ---------------------------------------------------------------- workloads
# The GET ceiling is measured twice: right after the PUT (MinIO serves the
# objects from the page cache) and after drop_caches, the cold start every
# cold read in the block suite pays too (MinIO reads the objects from disk).
suite_ceiling() {
	local run out dir
	for run in $(seq 1 "$RUNS"); do
		for dir in put get get-cold; do
			[ "$dir" = get-cold ] && drop_caches
			out=$("$BENCH" ceiling "${dir%-cold}" -bucket "$BUCKET" -prefix "ceiling/r$run" -size "${SIZE_MIB}M" -concurrency "$THREADS")
			rec "ceiling-$dir" sdk value "$run" "${out%% *}"
			log "ceiling $dir run $run: ${out%% *} MiB/s"
		done
		"$BENCH" rm -bucket "$BUCKET" -prefix "ceiling/r$run/"
	done
}

# One tool, one run: write (2), cold read (3), and with full=1 rsync (4)
# and fio (5).
block_run() { # tool run full
	local tool=$1 run=$2 full=$3 t0 secs before after
	vol_create "$tool" "$tool-r$run"
	fuse_up
	mkfs_vol
	fs_up

	# 2. sequential write, durable (as far as the tool's fsync goes)
	[ "$tool" = local ] || before=$(stored_bytes "$PREFIX/")
	t0=$EPOCHREALTIME
	dd if="$SRC" of="$FS/data" bs=1M conv=fsync status=none
	secs=$(elapsed_since "$t0")
	rec write "$tool" value "$run" "$(calc "$SIZE_MIB / $secs")"
	if [ "$tool" != local ]; then
		after=$(stored_bytes "$PREFIX/")
		rec write "$tool" stored "$run" "$(calc "($after - $before) / 1048576")"
		rec write "$tool" rss "$run" "$(hwm_mib "$DPID")"
	fi
	log "write $tool run $run: $(calc "$SIZE_MIB / $secs") MiB/s${after:+, $(calc "($after - $before) / 1048576") MiB in the bucket at return}"

	# 3. cold read
	remount_cold
	t0=$EPOCHREALTIME
	cat "$FS/data" >/dev/null
	secs=$(elapsed_since "$t0")
	rec read "$tool" value "$run" "$(calc "$SIZE_MIB / $secs")"
	[ -z "$DPID" ] || rec read "$tool" rss "$run" "$(hwm_mib "$DPID")"
	log "read $tool run $run: $(calc "$SIZE_MIB / $secs") MiB/s"

	if ((full)); then
		# 4. rsync the Go tree, then make it durable
		t0=$EPOCHREALTIME
		rsync -a "$GOSRC/" "$FS/src/"
		sync -f "$FS"
		secs=$(elapsed_since "$t0")
		rec rsync "$tool" value "$run" "$secs"
		[ -z "$DPID" ] || rec rsync "$tool" rss "$run" "$(hwm_mib "$DPID")"
		log "rsync $tool run $run: $secs s"

		# 5. fio: warm (a region that fits the cache, read once), then cold
		dd if="$FS/data" of=/dev/null bs=1M count="$WARM_MIB" iflag=direct status=none
		run_fio fio-randread-warm "$tool" "$run" randread "$WARM_MIB"
		run_fio fio-randwrite-warm "$tool" "$run" randwrite "$WARM_MIB"
		remount_cold
		run_fio fio-randread-cold "$tool" "$run" randread ""
		remount_cold
		run_fio fio-randwrite-cold "$tool" "$run" randwrite ""
	fi
	fs_down
	fuse_down
	vol_destroy
}

suite_block() {
	local run tool
	note write s3backer "its fsync is a no-op: dd returns before the data is stored"
	note rsync s3backer "its sync returns before the data is stored"
	note fio-randread-warm s3backer "served from the kernel page cache of its FUSE file (no --directIO)"
	((HAVE_CODEC)) || { na write s3blk-plain "$NOT_BUILT"; na read s3blk-plain "$NOT_BUILT"; }
	for run in $(seq 1 "$RUNS"); do
		for tool in local s3blk s3backer; do
			block_run "$tool" "$run" 1
		done
		((HAVE_CODEC)) && block_run s3blk-plain "$run" 0
	done
	return 0
}

# stream_put tool run -> records put value/rss; the stream is left for get.
stream_url() { # tool run
	case $1 in
	s3blk | s3blk-plain) echo "s3://$BUCKET/streams/$1/r$2" ;;
	aws) echo "s3://$BUCKET/streams/aws/r$2" ;;
	rclone) echo "bench:$BUCKET/streams/rclone/r$2" ;;
	esac
}

stream_cmd() { # put|get tool run -> CMD
	local dir=$1 tool=$2 url
	url=$(stream_url "$tool" "$3")
	case $tool-$dir in
	s3blk-put) CMD=("$S3BLK" put "$url" --concurrency "$THREADS" --quiet) ;;
	s3blk-plain-put) CMD=("$S3BLK" put "$url" --concurrency "$THREADS" --quiet "${PLAIN_STREAM[@]}") ;;
	s3blk-get | s3blk-plain-get) CMD=("$S3BLK" get "$url" --concurrency "$THREADS" --quiet) ;;
	aws-put) CMD=("$AWS" --endpoint-url "$MINIO_EP" s3 cp --only-show-errors - "$url") ;;
	aws-get) CMD=("$AWS" --endpoint-url "$MINIO_EP" s3 cp --only-show-errors "$url" -) ;;
	rclone-put) CMD=(rclone rcat --s3-upload-concurrency "$THREADS" "$url") ;;
	rclone-get) CMD=(rclone cat "$url") ;;
	esac
}

# timed DIR TOOL RUN: runs one put (stdin from $SRC) or get (stdout to
# /dev/null) under /usr/bin/time; records MiB/s and peak RSS.
timed_stream() {
	local dir=$1 tool=$2 run=$3 tf=$WORK/time.out e m in=$SRC rc=0
	[ "$dir" = get ] && in=/dev/null
	stream_cmd "$dir" "$tool" "$run"
	/usr/bin/time -f '%e %M' -o "$tf" "${CMD[@]}" <"$in" >/dev/null 2>>"$LOGS/stream-$tool.err" || rc=$?
	if ((rc)); then
		na "$dir" "$tool" "failed (exit status $rc; see stream-$tool.err)"
		log "$dir $tool run $run: FAILED"
		return 1
	fi
	read -r e m <"$tf"
	rec "$dir" "$tool" value "$run" "$(calc "$SIZE_MIB / ($e < 0.01 ? 0.01 : $e)")"
	rec "$dir" "$tool" rss "$run" "$(calc "$m / 1024")"
	log "$dir $tool run $run: $(calc "$SIZE_MIB / ($e < 0.01 ? 0.01 : $e)") MiB/s, peak RSS $(calc "$m / 1024") MiB"
}

suite_stream() {
	local run tool tools=(aws rclone)
	if ((HAVE_STREAM)); then
		tools=(s3blk aws rclone)
		((HAVE_CODEC)) && tools+=(s3blk-plain)
	fi
	((HAVE_STREAM)) || for d in put get; do na "$d" s3blk "$NOT_BUILT"; na "$d" s3blk-plain "$NOT_BUILT"; done
	((HAVE_CODEC)) || for d in put get; do na "$d" s3blk-plain "$NOT_BUILT"; done
	for run in $(seq 1 "$RUNS"); do
		for tool in "${tools[@]}"; do
			timed_stream put "$tool" "$run" || continue
			timed_stream get "$tool" "$run" || continue
			if ((run == 1)); then # what came back is what went in (not timed)
				stream_cmd get "$tool" "$run"
				if ! "${CMD[@]}" </dev/null 2>>"$LOGS/stream-$tool.err" | cmp -s - "$SRC"; then
					note get "$tool" "WRONG DATA: get did not return what put stored"
					log "get $tool: WRONG DATA"
				fi
			fi
		done
		"$BENCH" rm -bucket "$BUCKET" -prefix "streams/"
	done
	return 0
}

# 8. Stream memory must not grow with the stream: s3blk put/get of a small
# and a large stream from a generator.
suite_mem() {
	if ! ((HAVE_STREAM)); then
		na mem-put s3blk "$NOT_BUILT"
		na mem-get s3blk "$NOT_BUILT"
		return 0
	fi
	local which mib url tf=$WORK/time.out e m
	for which in small large; do
		mib=$MEM_SMALL_MIB
		[ $which = large ] && mib=$MEM_LARGE_MIB
		url=s3://$BUCKET/mem/$which
		if "$BENCH" gen "${mib}M" | /usr/bin/time -f '%e %M' -o "$tf" "$S3BLK" put "$url" --concurrency "$THREADS" --quiet \
			2>>"$LOGS/mem.err"; then
			read -r e m <"$tf"
			rec mem-put s3blk "rss_$which" 1 "$(calc "$m / 1024")"
			log "mem put $(human "$mib"): peak RSS $(calc "$m / 1024") MiB, $(calc "$mib / $e") MiB/s"
		else
			na mem-put s3blk "put of $(human "$mib") failed"
		fi
		if /usr/bin/time -f '%e %M' -o "$tf" "$S3BLK" get "$url" --concurrency "$THREADS" --quiet >/dev/null 2>>"$LOGS/mem.err"; then
			read -r e m <"$tf"
			rec mem-get s3blk "rss_$which" 1 "$(calc "$m / 1024")"
			log "mem get $(human "$mib"): peak RSS $(calc "$m / 1024") MiB, $(calc "$mib / $e") MiB/s"
		else
			na mem-get s3blk "get of $(human "$mib") failed"
		fi
		"$BENCH" rm -bucket "$BUCKET" -prefix "mem/"
	done
}

# 9. Scale: a sparse 1 TiB volume holding SCALE_BLOCKS blocks.
stat_value() { awk -v k="$2" '$1 == k { print $2 }' "$1/stats"; }

suite_scale() {
	local out blocks objbytes fill budget run t0 secs
	TOOL=s3blk PREFIX=vol/scale MNT=$WORK/mnt/scale-fuse
	mkdir -p "$MNT"
	"$S3BLK" create "s3://$BUCKET/$PREFIX" --size 1T --block-size 1M >>"$LOGS/scale.create" 2>&1
	budget=$(($(df --output=avail -B1 "$S3BLK_MINIO_DIR" | tail -1) / 2))
	log "scale: storing $SCALE_BLOCKS blocks in a 1 TiB volume"
	out=$("$BENCH" scale -url "s3://$BUCKET/$PREFIX" -blocks "$SCALE_BLOCKS" -max-bytes "$budget")
	read -r blocks objbytes fill <<<"$out"
	rec scale s3blk blocks 1 "$blocks"
	rec scale s3blk object_bytes 1 "$objbytes"
	rec scale s3blk fill_seconds 1 "$fill"
	((blocks == SCALE_BLOCKS)) ||
		note scale s3blk "Only $blocks of $SCALE_BLOCKS blocks were stored: objects of $objbytes bytes (no compression?) would not fit on the disk."
	for run in $(seq 1 "$RUNS"); do
		drop_caches
		t0=$EPOCHREALTIME
		fuse_up
		rec scale s3blk mount_seconds "$run" "$(elapsed_since "$t0")"
		for _ in $(seq 1 6000); do
			[ "$(stat_value "$MNT" listing_done)" = 1 ] && break
			sleep 0.1
		done
		secs=$(elapsed_since "$t0")
		[ "$(stat_value "$MNT" listing_done)" = 1 ] || { log "scale: listing not done after 10 minutes"; return 1; }
		rec scale s3blk listing_seconds "$run" "$secs"
		rec scale s3blk known_blocks "$run" "$(stat_value "$MNT" known_blocks)"
		rec scale s3blk rss "$run" "$(hwm_mib "$DPID")"
		log "scale run $run: listing of $(stat_value "$MNT" known_blocks) blocks done in $secs s, peak RSS $(hwm_mib "$DPID") MiB"
		fuse_down
	done
	"$BENCH" rm -bucket "$BUCKET" -prefix "$PREFIX/"
	rmdir "$MNT"
}

# Requests per GiB, counted by a proxy in front of MinIO (one run per tool).
proxy_counts() { # phase tool
	local class n
	while read -r class n; do
		rec requests "$2" "${1}_$class" 1 "$(calc "$n * 1024 / $SIZE_MIB")"
	done < <(curl -sf "$ENDPOINT/.bench/counts")
}

suite_requests() {
	"$BENCH" proxy -target "$MINIO_EP" -addr-file "$WORK/proxy.addr" 2>>"$LOGS/proxy.err" &
	local ppid=$! tool
	track "$ppid" s3blk-bench
	for _ in $(seq 1 100); do [ -s "$WORK/proxy.addr" ] && break; sleep 0.1; done
	ENDPOINT=http://$(cat "$WORK/proxy.addr")
	for tool in s3blk s3backer; do
		curl -sf "$ENDPOINT/.bench/reset"
		vol_create "$tool" "$tool-requests"
		fuse_up
		mkfs_vol
		fs_up
		dd if="$SRC" of="$FS/data" bs=1M conv=fsync status=none
		fs_down
		fuse_down
		proxy_counts write "$tool"
		curl -sf "$ENDPOINT/.bench/reset"
		fuse_up
		fs_up
		cat "$FS/data" >/dev/null
		fs_down
		fuse_down
		proxy_counts read "$tool"
		log "requests $tool: $(curl -sf "$ENDPOINT/.bench/counts" | tr '\n' ' ')(read phase)"
		vol_destroy
	done
	ENDPOINT=$MINIO_EP
	kill "$ppid"
}

# Crash: kill -9 the daemon as soon as dd conv=fsync returns, remount, and
# count the MiB of the file that came back intact.
suite_crash() {
	local run tool out equal total
	for run in $(seq 1 "$RUNS"); do
		for tool in s3blk s3backer; do
			vol_create "$tool" "$tool-crash-r$run"
			fuse_up
			mkfs_vol
			fs_up
			dd if="$SRC" of="$FS/data" bs=1M conv=fsync status=none
			kill -9 "$DPID"
			while kill -0 "$DPID" 2>/dev/null; do sleep 0.05; done
			teardown_dead
			drop_caches
			fuse_up --force
			if ! fs_up 2>>"$LOGS/crash.err"; then
				note crash "$tool" "run $run: ext4 did not mount; e2fsck -fy, then mounted"
				e2fsck -fy "$FILE" >>"$LOGS/crash.err" 2>&1 || true
				fs_up
			fi
			out=$("$BENCH" survive "$SRC" "$FS/data")
			read -r equal total <<<"$out"
			[ -e "$FS/data" ] || note crash "$tool" "run $run: the file was gone"
			rec crash "$tool" survived "$run" "$equal"
			rec crash "$tool" total "$run" "$total"
			rec crash "$tool" lost "$run" "$((total - equal))"
			log "crash $tool run $run: $equal of $total MiB intact"
			fs_down
			fuse_down
			vol_destroy
		done
	done
}

# ---------------------------------------------------------------- run
for suite in ceiling block stream mem scale requests crash; do
	if want $suite; then
		log "== $suite"
		"suite_$suite"
	else
		meta note "The $suite workloads were not run (BENCH_ONLY=\"$ONLY\")."
	fi
done

"$BENCH" report -results "$RESULTS" -meta "$META" -out "$OUT"
log "wrote $OUT"
OK=1
