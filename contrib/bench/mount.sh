#!/usr/bin/env bash
# The mount side by side with gocryptfs, securefs and plain tmpfs, all backed by tmpfs, in one run.
#
#   0. the ceiling: a FUSE filesystem that does no work (contrib/bench/nullfs.rs) read the same way
#   1. sequential write (consentfs: import; writes through the mount: write.sh) and read of a 1 GiB file
#   2. ls -lR and find | wc -l over a view of 10,000 files
#   3. latency from `consentfs consent withdraw` returning to the file's lookup failing
#   4. cold start and resident memory of the daemon with 100,000 assets
#
# Run as root (mounts, drop_caches). Needs gocryptfs and securefs (apt-get install gocryptfs
# securefs). Usage: contrib/bench/mount.sh [MiB]   (default 1024)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
mib=${1:-1024}
(cd "$here" && cargo build --release -q && cargo build --release -q --example nullfs)
bin=$here/target/release/consentfs
for t in gocryptfs securefs; do command -v $t >/dev/null || { echo "missing $t: apt-get install $t" >&2; exit 2; }; done
work=$(mktemp -d /dev/shm/consentfs-mountbench.XXXXXX)
pids=()
cleanup() {
  for m in "$work"/*/mnt; do mountpoint -q "$m" 2>/dev/null && { fusermount3 -u "$m" 2>/dev/null || umount -l "$m"; }; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5; rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
secs() { local s e; s=$(now); "$@" >/dev/null 2>&1; e=$(now); echo "$e - $s" | bc -l; }
rate() { echo "scale=0; $mib / $1" | bc -l; }
ratio() { echo "scale=2; $1 / $2" | bc -l; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
wait_mounted() { for _ in $(seq 1 600); do mountpoint -q "$1" && return 0; sleep 0.01; done; echo "mount of $1 failed" >&2; return 1; }

head -c $((mib << 20)) /dev/urandom > "$work/big.raw"

# ---- consentfs ----------------------------------------------------------------------------
c=$work/consentfs; mkdir -p "$c/mnt"
export CONSENTFS_STORE=$c/store CONSENTFS_KEY_FILE=$c/key
"$bin" init 2>/dev/null
c_write=$(secs "$bin" import --collection bench "$work/big.raw")
"$bin" mark bench/big.raw --no-persons >/dev/null
"$bin" user add root >/dev/null; "$bin" user grant root --purpose website >/dev/null
"$bin" mount "$c/mnt" 2>"$c/log" & pids+=($!); wait_mounted "$c/mnt"
drop; c_read=$(secs cat "$c/mnt/root/website/bench/big.raw")
c_read2=$(secs cat "$c/mnt/root/website/bench/big.raw")

# ---- gocryptfs ----------------------------------------------------------------------------
g=$work/gocryptfs; mkdir -p "$g/cipher" "$g/mnt"
echo pw > "$g/pw"
gocryptfs -q -init -passfile "$g/pw" "$g/cipher" >/dev/null 2>&1
gocryptfs -q -passfile "$g/pw" "$g/cipher" "$g/mnt"; wait_mounted "$g/mnt"
g_write=$(secs dd if="$work/big.raw" of="$g/mnt/big.raw" bs=1M conv=fsync)
drop; g_read=$(secs cat "$g/mnt/big.raw")

# ---- securefs -----------------------------------------------------------------------------
s=$work/securefs; mkdir -p "$s/cipher" "$s/mnt"
securefs create --pass pw --pbkdf pkcs5-pbkdf2-hmac-sha256 -r 1 "$s/cipher" >/dev/null 2>&1 \
  || securefs create --pass pw "$s/cipher" >/dev/null
securefs mount -b --pass pw --log "$s/log" "$s/cipher" "$s/mnt" >/dev/null 2>&1; wait_mounted "$s/mnt"
s_write=$(secs dd if="$work/big.raw" of="$s/mnt/big.raw" bs=1M conv=fsync)
drop; s_read=$(secs cat "$s/mnt/big.raw")

# ---- the ceiling: FUSE doing no work ------------------------------------------------------
z=$work/nullfs; mkdir -p "$z/mnt"
"$here/target/release/examples/nullfs" "$z/mnt" "$mib" 4 2>"$z/log" & pids+=($!); wait_mounted "$z/mnt"
# the same readahead as the consentfs daemon sets on its mount, so the ceiling is comparable
cat "/sys/class/bdi/$(mountpoint -d "$c/mnt")/read_ahead_kb" > "/sys/class/bdi/$(mountpoint -d "$z/mnt")/read_ahead_kb"
drop; z_read=$(secs cat "$z/mnt/zero")
fusermount3 -u "$z/mnt" 2>/dev/null || umount "$z/mnt"

# ---- tmpfs --------------------------------------------------------------------------------
t_write=$(secs dd if="$work/big.raw" of="$work/copy.raw" bs=1M)
drop; t_read=$(secs cat "$work/copy.raw"); rm -f "$work/copy.raw"

echo "== sequential 1 GiB file, MiB/s (ratio to gocryptfs) =="
printf "%-10s write %6s   read %6s (ratio %s)\n" consentfs "$(rate "$c_write")*" "$(rate "$c_read")" "$(ratio "$(rate "$c_read")" "$(rate "$g_read")")"
printf "%-10s write %6s   read %6s\n" gocryptfs "$(rate "$g_write")" "$(rate "$g_read")"
printf "%-10s write %6s   read %6s (ratio %s)\n" securefs "$(rate "$s_write")" "$(rate "$s_read")" "$(ratio "$(rate "$s_read")" "$(rate "$g_read")")"
printf "%-10s write %6s   read %6s\n" tmpfs "$(rate "$t_write")" "$(rate "$t_read")"
printf "%-10s               read %6s (the ceiling of FUSE here; consentfs reads at %s%% of it)\n" nullfs "$(rate "$z_read")" "$(echo "scale=0; 100 * $(rate "$c_read") / $(rate "$z_read")" | bc -l)"
echo "   * consentfs write = import (writes through the mount: contrib/bench/write.sh)"
echo "   consentfs read again with the page cache warm: $(rate "$c_read2") MiB/s"

# ---- random 4 KiB reads of the 1 GiB file, and four readers of four files at once ---------
command -v fio >/dev/null || apt-get install -y fio >/dev/null
# randread FILE: IOPS of 2 jobs reading 4 KiB at random offsets for 15 s, buffered, caches
# dropped first (fio's invalidate), as a photo tool seeking through a large file would
randread() {
  drop
  fio --name=rr --filename="$1" --rw=randread --bs=4k --numjobs=2 --runtime=15 --time_based \
    --ioengine=psync --invalidate=1 --group_reporting --output-format=json 2>/dev/null \
    | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["jobs"][0]["read"]["iops"]))'
}
c_rr=$(randread "$c/mnt/root/website/bench/big.raw"); g_rr=$(randread "$g/mnt/big.raw")
s_rr=$(randread "$s/mnt/big.raw")
# four files of a quarter each, read by four processes at once, cold; MiB/s over all four
q=$((mib / 4))
for i in 1 2 3 4; do head -c $((q << 20)) /dev/urandom > "$work/q$i.raw"; done
"$bin" import --collection bench4 "$work"/q?.raw >/dev/null
for i in 1 2 3 4; do "$bin" mark "bench4/q$i.raw" --no-persons >/dev/null; done
for i in 1 2 3 4; do cp "$work/q$i.raw" "$g/mnt/"; cp "$work/q$i.raw" "$s/mnt/"; rm "$work/q$i.raw"; done
sleep 0.5   # let the mount pick up the import
four() { drop; secs sh -c "for i in 1 2 3 4; do cat '$1'/q\$i.raw > /dev/null & done; wait"; }
c_four=$(four "$c/mnt/root/website/bench4"); g_four=$(four "$g/mnt"); s_four=$(four "$s/mnt")
echo "== random 4 KiB reads of the 1 GiB file (fio, 2 jobs, 15 s, cold), IOPS (ratio to gocryptfs) =="
printf "%-10s %8s (%s)\n%-10s %8s\n%-10s %8s (%s)\n" consentfs "$c_rr" "$(ratio "$c_rr" "$g_rr")" \
  gocryptfs "$g_rr" securefs "$s_rr" "$(ratio "$s_rr" "$g_rr")"
echo "== four readers of four files of $q MiB at once, cold, MiB/s in all (ratio to gocryptfs) =="
printf "%-10s %6s (%s)\n%-10s %6s\n%-10s %6s (%s)\n" consentfs "$(rate "$c_four")" \
  "$(ratio "$(rate "$c_four")" "$(rate "$g_four")")" gocryptfs "$(rate "$g_four")" \
  securefs "$(rate "$s_four")" "$(ratio "$(rate "$s_four")" "$(rate "$g_four")")"
rm -f "$g/mnt/big.raw" "$s/mnt/big.raw" "$g"/mnt/q?.raw "$s"/mnt/q?.raw

# ---- 10,000 files -------------------------------------------------------------------------
"$bin" generate --assets 10000 --persons 0 --events 0 --no-persons-every 1 --user root 2>/dev/null
for d in $(seq -w 0 99); do mkdir -p "$g/mnt/gen/c$d" "$s/mnt/gen/c$d" "$work/plain/gen/c$d"; done
for i in $(seq 0 9999); do
  d=$(printf %02d $((i % 100))); f=$(printf img%06d.jpg $i)
  printf 'synthetic photo' > "$g/mnt/gen/c$d/$f"; printf 'synthetic photo' > "$s/mnt/gen/c$d/$f"
  printf 'synthetic photo' > "$work/plain/gen/c$d/$f"
done
sleep 0.5   # let the mount pick up the generated catalog
n=$(find "$c/mnt/root/website/gen" -type f | wc -l)
[ "$n" = 10000 ] || { echo "consentfs view has $n files, expected 10000" >&2; exit 1; }
echo "== 10,000 files: ls -lR / find -type f | wc -l, seconds, cold caches (ratio to gocryptfs) =="
drop; c_ls=$(secs ls -lR "$c/mnt/root/website/gen"); drop; c_find=$(secs sh -c "find '$c/mnt/root/website/gen' -type f | wc -l")
drop; g_ls=$(secs ls -lR "$g/mnt/gen"); drop; g_find=$(secs sh -c "find '$g/mnt/gen' -type f | wc -l")
drop; s_ls=$(secs ls -lR "$s/mnt/gen"); drop; s_find=$(secs sh -c "find '$s/mnt/gen' -type f | wc -l")
drop; t_ls=$(secs ls -lR "$work/plain/gen"); drop; t_find=$(secs sh -c "find '$work/plain/gen' -type f | wc -l")
printf "%-10s ls -lR %6.3f (%s)   find %6.3f (%s)\n" consentfs "$c_ls" "$(ratio "$c_ls" "$g_ls")" "$c_find" "$(ratio "$c_find" "$g_find")"
printf "%-10s ls -lR %6.3f          find %6.3f\n" gocryptfs "$g_ls" "$g_find"
printf "%-10s ls -lR %6.3f (%s)   find %6.3f (%s)\n" securefs "$s_ls" "$(ratio "$s_ls" "$g_ls")" "$s_find" "$(ratio "$s_find" "$g_find")"
printf "%-10s ls -lR %6.3f          find %6.3f\n" tmpfs "$t_ls" "$t_find"

# ---- withdrawal latency -------------------------------------------------------------------
"$bin" person add "Bench Person" >/dev/null
f=$c/mnt/root/website/gen/c00/img000000.jpg
"$bin" unlink gen/c00/img000000.jpg "Bench Person" >/dev/null 2>&1 || true
"$bin" mark gen/c00/img000000.jpg --no-persons --clear >/dev/null
"$bin" link gen/c00/img000000.jpg "Bench Person" >/dev/null
lat=()
for i in $(seq 1 100); do
  "$bin" consent grant "Bench Person" --purpose website >/dev/null
  until [ -e "$f" ]; do :; done
  "$bin" consent withdraw "Bench Person" --purpose website >/dev/null
  t0=$(date +%s%N)
  while [ -e "$f" ]; do :; done
  t1=$(date +%s%N)
  lat+=($(( (t1 - t0) / 1000 )))
done
sorted=$(printf '%s\n' "${lat[@]}" | sort -n)
p50=$(echo "$sorted" | sed -n 50p); p99=$(echo "$sorted" | sed -n 99p); max=$(echo "$sorted" | tail -1)
echo "== withdraw returned -> lookup fails (100 tries) =="
ms() { echo "$(($1 / 1000)).$(printf %03d $(($1 % 1000))) ms"; }
echo "p50 $(ms "$p50")   p99 $(ms "$p99")   max $(ms "$max")"
fusermount3 -u "$c/mnt" 2>/dev/null || umount "$c/mnt"

# ---- cold start with 100,000 assets -------------------------------------------------------
big=$work/big-store; mkdir -p "$big/mnt"
export CONSENTFS_STORE=$big/store CONSENTFS_KEY_FILE=$big/key
"$bin" init 2>/dev/null
"$bin" generate --assets 100000 --persons 10000 --events 30000 --user root 2>/dev/null
drop
t0=$(now)
"$bin" mount "$big/mnt" 2>"$big/log" & pid=$!; pids+=($pid)
wait_mounted "$big/mnt"
t1=$(now)
sleep 0.2
rss=$(awk '/VmRSS/ {print int($2/1024)}' /proc/$pid/status)
files=$(find "$big/mnt/root/website" -type f | wc -l)
rss2=$(awk '/VmRSS/ {print int($2/1024)}' /proc/$pid/status)
echo "== daemon with 100,000 assets, 10,000 persons, 30,000 consent events =="
printf "cold start %.2f s   resident %s MiB at start, %s MiB after listing all %s visible website files\n" \
  "$(echo "$t1 - $t0" | bc -l)" "$rss" "$rss2" "$files"
