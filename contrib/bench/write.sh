#!/usr/bin/env bash
# Writes through the mount, side by side with gocryptfs, securefs and plain tmpfs, all backed by
# tmpfs (/dev/shm), in one run.
#
#   1. sequential write of a 1 GiB file: dd bs=1M conv=fsync, MiB/s (target: consentfs >= 2x gocryptfs, issue 14)
#   2. tar xf of 5,000 small files (50 folders x 100 files of 1-20 KiB) plus sync, seconds; then
#      the files are counted and compared with the originals
#   3. exiftool saving an Artist tag into a ~40 MB JPEG, cold cache, best of 2: -overwrite_original
#      (temp file renamed over the photo) and -overwrite_original_in_place (photo rewritten in place);
#      on consentfs the photo is an imported, reviewed asset, so each save makes a new version
#
# Run as root (mounts, drop_caches). Needs gocryptfs securefs imagemagick libimage-exiftool-perl bc.
# Usage: contrib/bench/write.sh [MiB]   (default 1024)
#   CONSENTFS_BIN=/path/to/consentfs   measures that binary instead of building this tree
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
mib=${1:-1024}
if [ -n "${CONSENTFS_BIN:-}" ]; then
  bin=$CONSENTFS_BIN   # another build, e.g. the previous release, for a before/after
else
  (cd "$here" && cargo build --release -q) || echo "cargo build failed; using the existing binary" >&2
  bin=${CARGO_TARGET_DIR:-$here/target}/release/consentfs
fi
for t in gocryptfs securefs convert exiftool bc python3; do command -v $t >/dev/null \
  || { echo "missing $t: apt-get install gocryptfs securefs imagemagick libimage-exiftool-perl bc" >&2; exit 2; }; done
work=$(mktemp -d /dev/shm/consentfs-writebench.XXXXXX)
pids=()
cleanup() {
  for m in "$work"/*/mnt; do mountpoint -q "$m" 2>/dev/null && { fusermount3 -u "$m" 2>/dev/null || umount -l "$m"; }; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5; rm -rf "$work"
}
trap cleanup EXIT
fails=$work/failures; : > "$fails"
now() { date +%s.%N; }
# secs CMD...: elapsed seconds; a failing command is noted (with its stderr) in $fails
secs() {
  local s e rc=0; s=$(now); "$@" >/dev/null 2>"$work/last.err" || rc=$?; e=$(now)
  [ $rc = 0 ] || { echo "FAILED (exit $rc): $*"; head -5 "$work/last.err" | sed 's/^/    /'; } >> "$fails"
  echo "$e - $s" | bc -l
}
rate() { echo "scale=0; $mib / $1" | bc -l; }
ratio() { printf "%.2f" "$(echo "scale=4; $1 / $2" | bc -l)"; }
lt() { [ "$(echo "$1 < $2" | bc -l)" = 1 ]; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
wait_mounted() { for _ in $(seq 1 600); do mountpoint -q "$1" && return 0; sleep 0.01; done; echo "mount of $1 failed" >&2; return 1; }
problem() { echo "   !! $*"; echo "$*" >> "$fails"; }

# ---- test data ----------------------------------------------------------------------------
head -c $((mib << 20)) /dev/urandom > "$work/big.raw"
python3 "$here/contrib/bench/small_tree.py" "$work/tree/small" 5000 1
find "$work/tree" -exec touch -h -d "2024-05-01 12:00:00" {} +   # tar xf must keep this mtime
tar cf "$work/small.tar" -C "$work/tree" small
w=4800
while :; do   # colour noise at quality 100, 4:4:4: ~2.5 bytes a pixel, deterministic with -seed
  convert -seed 1 -size ${w}x$((w * 11 / 16)) xc:gray50 -colorspace sRGB -type TrueColor -attenuate 0.5 \
    +noise Random -sampling-factor 1x1 -quality 100 "$work/photo.jpg"
  [ "$(stat -c %s "$work/photo.jpg")" -ge 38000000 ] && break; w=$((w + 400))
done
photo_mb=$(echo "scale=1; $(stat -c %s "$work/photo.jpg") / 1000000" | bc -l)

# ---- the four file systems ----------------------------------------------------------------
declare -A dir
tools=(consentfs gocryptfs securefs tmpfs)
c=$work/consentfs; mkdir -p "$c/mnt"
export CONSENTFS_STORE=$c/store CONSENTFS_KEY_FILE=$c/key
"$bin" init 2>/dev/null
"$bin" purpose list | grep -qw website || "$bin" purpose add website >/dev/null
"$bin" user add root >/dev/null; "$bin" user grant root --purpose website --access delete >/dev/null
"$bin" import --collection bench "$work/photo.jpg" >/dev/null
"$bin" mark bench/photo.jpg --no-persons >/dev/null
"$bin" mount "$c/mnt" 2>"$c/log" & pids+=($!); wait_mounted "$c/mnt"
dir[consentfs]=$c/mnt/root/website
g=$work/gocryptfs; mkdir -p "$g/cipher" "$g/mnt"; echo pw > "$g/pw"
gocryptfs -q -init -passfile "$g/pw" "$g/cipher" >/dev/null 2>&1
gocryptfs -q -nosyslog -passfile "$g/pw" "$g/cipher" "$g/mnt"; wait_mounted "$g/mnt"; dir[gocryptfs]=$g/mnt
s=$work/securefs; mkdir -p "$s/cipher" "$s/mnt"
securefs create --pass pw --pbkdf pkcs5-pbkdf2-hmac-sha256 -r 1 "$s/cipher" >/dev/null 2>&1 \
  || securefs create --pass pw "$s/cipher" >/dev/null
securefs mount -b --pass pw --log "$s/log" "$s/cipher" "$s/mnt" >/dev/null 2>&1; wait_mounted "$s/mnt"; dir[securefs]=$s/mnt
mkdir -p "$work/plain"; dir[tmpfs]=$work/plain

echo "consentfs write benchmark, all backed by /dev/shm; ratios are consentfs (or securefs, tmpfs) / gocryptfs"
echo "  1. dd a ${mib} MiB file of random bytes into the mount, bs=1M conv=fsync: MiB/s (higher is better)"
echo "  2. tar xf of 5,000 files of 1-20 KiB in 50 folders, then sync: seconds (lower is better)"
echo "  3. exiftool -Artist=... on a ${photo_mb} MB JPEG, cold cache, best of 2: seconds (lower is better)"

# ---- 1. sequential write ------------------------------------------------------------------
declare -A W; for t in "${tools[@]}"; do drop; W[$t]=$(secs dd if="$work/big.raw" of="${dir[$t]}/big.raw" bs=1M conv=fsync); done
echo "== 1. sequential write of $mib MiB, MiB/s =="
for t in "${tools[@]}"; do
  printf "%-10s %6s MiB/s   %5sx gocryptfs\n" $t "$(rate "${W[$t]}")" "$(ratio "$(rate "${W[$t]}")" "$(rate "${W[gocryptfs]}")")"
  cmp -s "$work/big.raw" "${dir[$t]}/big.raw" || problem "$t: big.raw read back differs from what was written"
done
r=$(ratio "$(rate "${W[consentfs]}")" "$(rate "${W[gocryptfs]}")")
if lt "$r" 2.0; then echo ">> consentfs / gocryptfs = $r: target >= 2.0 MISSED"; else echo ">> consentfs / gocryptfs = $r: target >= 2.0 met"; fi
for t in "${tools[@]}"; do rm -f "${dir[$t]}/big.raw"; done

# ---- 2. untar of 5,000 small files --------------------------------------------------------
declare -A X; for t in "${tools[@]}"; do
  drop; X[$t]=$(secs sh -c "tar xf '$work/small.tar' -C '${dir[$t]}'; r=\$?; sync; exit \$r")
done
echo "== 2. tar xf of 5,000 small files + sync, seconds =="
for t in "${tools[@]}"; do
  n=$(find "${dir[$t]}/small" -type f 2>/dev/null | wc -l)
  printf "%-10s %7.3f s   %5sx gocryptfs   %s files\n" $t "${X[$t]}" "$(ratio "${X[$t]}" "${X[gocryptfs]}")" "$n"
  [ "$n" = 5000 ] || problem "$t: $n files after tar xf, expected 5000"
  diff -rq "$work/tree/small" "${dir[$t]}/small" >/dev/null 2>&1 || problem "$t: extracted tree differs from the original (diff -r)"
  f=small/d07/img042.jpg; m=$(stat -c %Y "${dir[$t]}/$f" 2>/dev/null || echo none)
  [ "$m" = "$(stat -c %Y "$work/tree/$f")" ] || problem "$t: $f has mtime $m, not the tar's (futimens before close lost)"
done

# ---- 3. exiftool saving into a 40 MB photo ------------------------------------------------
declare -A P
P[consentfs]=${dir[consentfs]}/bench/photo.jpg
for t in gocryptfs securefs tmpfs; do cp "$work/photo.jpg" "${dir[$t]}/photo.jpg"; P[$t]=${dir[$t]}/photo.jpg; done
sync
[ -f "${P[consentfs]}" ] || problem "consentfs: ${P[consentfs]} is not visible"
echo "== 3. exiftool on a $photo_mb MB JPEG, seconds, best of 2 =="
for mode in overwrite_original overwrite_original_in_place; do
  tag=Bench; [ $mode = overwrite_original ] || tag=Bench2
  declare -A E=()
  for t in "${tools[@]}"; do
    for i in 1 2; do
      # a new value each time: a save that changes nothing is no new version
      # in a process group of its own, as a shell with job control runs it: consentfs takes
      # what one process group read as the sources of what it writes, and this script's own
      # group read the 5,000 unlinked drafts above (diff -r), which no photo may be made from
      drop; e=$(secs setsid -w exiftool -$mode -Artist=$tag$i "${P[$t]}")
      [ -z "${E[$t]:-}" ] || lt "$e" "${E[$t]}" && E[$t]=$e
    done
  done
  echo "  -$mode:"; for t in "${tools[@]}"; do
    a=$(exiftool -s3 -Artist "${P[$t]}" 2>&1 || true)
    printf "  %-10s %7.3f s   %5sx gocryptfs   Artist=%s\n" $t "${E[$t]}" "$(ratio "${E[$t]}" "${E[gocryptfs]}")" "$a"
    [ "$a" = ${tag}2 ] || problem "$t: after -$mode the Artist tag reads '$a', expected '${tag}2'"
    sz=$(stat -c %s "${P[$t]}" 2>/dev/null || echo 0); [ "$sz" -ge 38000000 ] || problem "$t: photo is $sz bytes after -$mode"
    left=$(find "$(dirname "${P[$t]}")" -name '*exiftool_tmp*' | wc -l)
    [ "$left" = 0 ] || problem "$t: $left exiftool temp file(s) left behind"
  done
done
nv=$("$bin" versions bench/photo.jpg 2>&1 | tail -n +2 | grep -c . || true)
nt=$("$bin" trash list 2>&1 | tail -n +2 | grep -c . || true)
echo "   consentfs: bench/photo.jpg has $nv versions (1 import + 4 saves expected); $nt assets in the trash"
[ "$nv" = 5 ] || { problem "consentfs: bench/photo.jpg has $nv versions, expected 5"
  "$bin" versions bench/photo.jpg 2>&1 | sed 's/^/      /'
  grep -E "asset 1[: ]" "$c/log" | tail -20 | sed 's/^/      /'; }

# ---- problems -----------------------------------------------------------------------------
if [ -s "$fails" ]; then
  echo "== problems =="; cat "$fails"
  echo "== consentfs log: errors and warnings (of $(wc -l < "$c/log") lines) =="
  grep -iE 'error|warn|panic|fail' "$c/log" | tail -20 || true
else
  echo "== no problems: every command succeeded, counts, contents and tags check out =="
fi
