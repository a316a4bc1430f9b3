#!/usr/bin/env bash
# `make demo`: the main job on a local-directory store, no S3 account needed.
# Creates a 2 GiB encrypted volume in .work/demo/store, mounts it, puts ext4 on it,
# copies the Go source tree in, shows the stats, unmounts (waiting for every
# block to be stored), then remounts and verifies the tree byte for byte.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "demo: needs root (FUSE mount and mount -o loop); run: sudo make demo" >&2; exit 1; }

S3BLK=$PWD/bin/s3blk
WORK=$PWD/.work/demo
URL=file://$WORK/store/vol1
MNT=$WORK/mnt       # the FUSE mount: $MNT/file is the disk
FS=$WORK/fs         # the ext4 filesystem on it
SRC=$(go env GOROOT)/src

cleanup() {
	mountpoint -q "$FS" && umount "$FS" || true
	mountpoint -q "$MNT" && "$S3BLK" umount "$MNT" || true
}
trap cleanup EXIT
cleanup
rm -rf "$WORK"
mkdir -p "$MNT" "$FS"
# The passphrase (a real user would type it, or keep the file somewhere safe).
export S3BLK_PASSPHRASE_FILE=$WORK/passphrase
(umask 077; echo "demo passphrase, change me" > "$S3BLK_PASSPHRASE_FILE")

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "s3blk create $URL --size 2G --block-size 1M"
"$S3BLK" create "$URL" --size 2G --block-size 1M

step "s3blk mount $URL $MNT"
"$S3BLK" mount "$URL" "$MNT"
ls -l "$MNT"

step "mkfs.ext4 and mount -o loop"
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$MNT/file"
mount -o loop "$MNT/file" "$FS"
df -h "$FS"

step "copy $SRC into it with rsync, then sync (fsync reaches the store)"
time rsync -a "$SRC/" "$FS/src/"
sync

step "stats"
cat "$MNT/stats"

step "unmount: s3blk umount returns once every dirty block is stored"
umount "$FS"
time "$S3BLK" umount "$MNT"
"$S3BLK" info "$URL"
"$S3BLK" verify --quiet "$URL" | tail -n 1
echo "objects in the store: $(find "$WORK/store/vol1/blocks" -type f | wc -l) blocks, $(du -sh "$WORK/store/vol1" | cut -f1)"

step "remount and verify the tree byte for byte"
"$S3BLK" mount "$URL" "$MNT"
e2fsck -fn "$MNT/file" | tail -n 1
mount -o loop,ro "$MNT/file" "$FS"
diff -r "$SRC" "$FS/src" && echo "verified: the tree came back identical"
umount "$FS"
"$S3BLK" umount "$MNT"
echo "demo done; the volume's objects are in $WORK/store/vol1"
