# Sourced by fio.sh and fsx.sh: consentfs (release build, a store with a mounted view that has a
# write grant), gocryptfs and plain tmpfs, all backed by tmpfs (/dev/shm), so the comparison is
# of the file systems and not of a disk. After sourcing: $bin, $work, $c (consentfs' folder,
# store in $c/store), dir[consentfs|gocryptfs|tmpfs] (where each target's files go: for
# consentfs the view's folder of collection "bench"), tools=(consentfs gocryptfs tmpfs), and
# helpers ratio, wait_mounted, store_bytes. Run as root (mounts).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
(cd "$here" && cargo build --release -q) || echo "cargo build failed; using the existing binary" >&2
bin=${CARGO_TARGET_DIR:-$here/target}/release/consentfs
[ -x "$bin" ] || { echo "no release build at $bin" >&2; exit 2; }
for t in gocryptfs bc python3; do command -v $t >/dev/null \
  || { echo "missing $t: apt-get install gocryptfs bc python3" >&2; exit 2; }; done
work=$(mktemp -d /dev/shm/consentfs-bench.XXXXXX)
pids=()
cleanup() {
  for m in "$work"/*/mnt; do mountpoint -q "$m" 2>/dev/null && { fusermount3 -u "$m" 2>/dev/null || umount -l "$m"; }; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5; rm -rf "$work"
}
trap cleanup EXIT
ratio() { printf "%.2f" "$(echo "scale=4; $1 / $2" | bc -l)"; }
wait_mounted() { for _ in $(seq 1 600); do mountpoint -q "$1" && return 0; sleep 0.01; done; echo "mount of $1 failed" >&2; return 1; }
# store_bytes: bytes on disk (allocated blocks, so holes of sparse objects count as nothing) and
# the number of objects in consentfs' object folder
store_bytes() { du -s -B1 "$c/store/objects" | cut -f1; }
store_objects() { find "$c/store/objects" -type f | wc -l; }

declare -A dir
tools=(consentfs gocryptfs tmpfs)
c=$work/consentfs; mkdir -p "$c/mnt"
export CONSENTFS_STORE=$c/store CONSENTFS_KEY_FILE=$c/key
"$bin" init 2>/dev/null
"$bin" purpose list | grep -w website >/dev/null || "$bin" purpose add website >/dev/null
"$bin" user add root >/dev/null; "$bin" user grant root --purpose website --access write >/dev/null
# a caller may put files to import into $work/import first (define prepare_import)
mkdir -p "$work/import"; ! declare -F prepare_import >/dev/null || prepare_import "$work/import"
[ -n "$(ls "$work/import")" ] || printf 'x' > "$work/import/placeholder.bin"
"$bin" import --collection bench "$work/import"/* >/dev/null
for f in "$work/import"/*; do "$bin" mark "bench/$(basename "$f")" --no-persons >/dev/null; done
"$bin" mount "$c/mnt" 2>"$c/log" & pids+=($!); wait_mounted "$c/mnt"
dir[consentfs]=$c/mnt/root/website/bench
g=$work/gocryptfs; mkdir -p "$g/cipher" "$g/mnt"; echo pw > "$g/pw"
gocryptfs -q -init -passfile "$g/pw" "$g/cipher" >/dev/null 2>&1
gocryptfs -q -nosyslog -passfile "$g/pw" "$g/cipher" "$g/mnt"; wait_mounted "$g/mnt"; dir[gocryptfs]=$g/mnt
mkdir -p "$work/plain"; dir[tmpfs]=$work/plain
for f in "$work/import"/*; do for t in gocryptfs tmpfs; do cp "$f" "${dir[$t]}/"; done; done
sync
