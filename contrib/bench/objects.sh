#!/usr/bin/env bash
# Where the objects are: the store's own folder against an S3 bucket (SeaweedFS on loopback,
# contrib/s3-server.sh), same file, same run, everything on /dev/shm.
#
#   1. import of one file (sealed and uploaded)
#   2. a write through the mount (`dd conv=fsync`)
#   3. read through the mount with caches dropped: from the bucket (empty block cache), then
#      again from the block cache (page cache dropped), against the store's own folder
#   4. a new file of 10 KiB saved through the mount, 200 of them (each one upload)
#
# Run as root (mounts, drop_caches). Usage: contrib/bench/objects.sh [MiB]   (default 512)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
mib=${1:-512}
(cd "$here" && cargo build --release -q)
bin=$here/target/release/consentfs
bash "$here/contrib/s3-server.sh" install >/dev/null
work=$(mktemp -d /dev/shm/consentfs-objbench.XXXXXX)
pids=()
cleanup() {
  for m in "$work"/*/mnt; do mountpoint -q "$m" 2>/dev/null && { fusermount3 -u "$m" 2>/dev/null || umount -l "$m"; }; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  bash "$here/contrib/s3-server.sh" stop "$work/s3" 2>/dev/null || true
  sleep 0.5; rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
secs() { local s e; s=$(now); "$@" >/dev/null 2>&1; e=$(now); echo "$e - $s" | bc -l; }
rate() { echo "scale=0; $2 / $1" | bc -l; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
wait_mounted() { for _ in $(seq 1 600); do mountpoint -q "$1" && return 0; sleep 0.01; done; echo "mount of $1 failed" >&2; return 1; }

head -c $((mib << 20)) /dev/urandom > "$work/big.raw"
mkdir -p "$work/s3"
# shellcheck disable=SC2046
export $(bash "$here/contrib/s3-server.sh" start "$work/s3" 27000 bench | xargs)

declare -A imp wr cold warm small
for kind in folder s3; do
  c=$work/$kind; mkdir -p "$c/mnt"
  export CONSENTFS_STORE=$c/store CONSENTFS_KEY_FILE=$c/key CONSENTFS_ANCHOR=$c/anchor.json \
         CONSENTFS_SOCKET=$c/sock
  if [[ $kind == s3 ]]; then "$bin" --objects s3://bench/lib init 2>/dev/null; else "$bin" init 2>/dev/null; fi
  imp[$kind]=$(secs "$bin" import --collection bench "$work/big.raw")
  "$bin" mark bench/big.raw --no-persons >/dev/null
  "$bin" user add root >/dev/null; "$bin" user grant root --purpose website --access write >/dev/null
  "$bin" mount "$c/mnt" 2>"$c/log" & pids+=($!); wait_mounted "$c/mnt"
  wr[$kind]=$(secs dd if="$work/big.raw" of="$c/mnt/root/website/bench/written.raw" bs=1M conv=fsync)
  rm -rf "$c/store/cache"/* 2>/dev/null || true
  drop; cold[$kind]=$(secs cat "$c/mnt/root/website/bench/big.raw")
  drop; warm[$kind]=$(secs cat "$c/mnt/root/website/bench/big.raw")
  mkdir -p "$c/small"; for i in $(seq 1 200); do head -c 10240 /dev/urandom > "$c/small/$i.jpg"; done
  small[$kind]=$(secs bash -c "cp $c/small/*.jpg $c/mnt/root/website/bench/ && sync")
  fusermount3 -u "$c/mnt"
done

echo "== objects in the store's folder vs in an S3 bucket (SeaweedFS on loopback), $mib MiB =="
printf "%-8s import %5s MiB/s  write %5s MiB/s  read cold %5s MiB/s  read from block cache %5s MiB/s  200 new files of 10 KiB %.2f s\n" \
  folder "$(rate "${imp[folder]}" "$mib")" "$(rate "${wr[folder]}" "$mib")" "$(rate "${cold[folder]}" "$mib")" "$(rate "${warm[folder]}" "$mib")" "${small[folder]}"
printf "%-8s import %5s MiB/s  write %5s MiB/s  read cold %5s MiB/s  read from block cache %5s MiB/s  200 new files of 10 KiB %.2f s\n" \
  s3 "$(rate "${imp[s3]}" "$mib")" "$(rate "${wr[s3]}" "$mib")" "$(rate "${cold[s3]}" "$mib")" "$(rate "${warm[s3]}" "$mib")" "${small[s3]}"
echo "(folder: the second read is from the page cache dropped too, so it is another cold read)"
