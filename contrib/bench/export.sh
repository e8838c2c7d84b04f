#!/usr/bin/env bash
# Exports and the access log, side by side with copying the same files out of gocryptfs,
# securefs and plain tmpfs, all backed by tmpfs (/dev/shm), in one run.
#
#   1. export of N MiB of photos (5 MiB each) into an empty folder, cold cache: seconds, MiB/s;
#      the peers: cp -r out of their mount (what a script would do there, without any proof)
#   2. export of 2,000 small files (10 KiB): seconds, files/s; peers: cp -r
#   3. export --sync when nothing changed (every file re-hashed): seconds; peers: rsync -a again
#   4. export verify of the photo export: seconds
#   5. the access log: reading the 2,000 small files through the consentfs mount the first time
#      today (each open is written to the audit log before it is served) and a second time
#      (already logged), both with a cold page cache: seconds and the cost per logged open
#
# Run as root (mounts, drop_caches). Needs gocryptfs securefs rsync bc.
# Usage: contrib/bench/export.sh [MiB]   (default 1024)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
mib=${1:-1024}
(cd "$here" && cargo build --release -q) || echo "cargo build failed; using the existing binary" >&2
bin=$here/target/release/consentfs
for t in gocryptfs securefs rsync bc; do command -v $t >/dev/null \
  || { echo "missing $t: apt-get install gocryptfs securefs rsync bc" >&2; exit 2; }; done
work=$(mktemp -d /dev/shm/consentfs-exportbench.XXXXXX)
pids=()
cleanup() {
  for m in "$work"/*/mnt; do mountpoint -q "$m" 2>/dev/null && { fusermount3 -u "$m" 2>/dev/null || umount -l "$m"; }; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5; rm -rf "$work"
}
trap cleanup EXIT
fails=$work/failures; : > "$fails"
now() { date +%s.%N; }
secs() {
  local s e rc=0; s=$(now); "$@" >/dev/null 2>"$work/last.err" || rc=$?; e=$(now)
  [ $rc = 0 ] || { echo "FAILED (exit $rc): $*"; head -5 "$work/last.err" | sed 's/^/    /'; } >> "$fails"
  echo "$e - $s" | bc -l
}
ratio() { printf "%.2f" "$(echo "scale=4; $1 / $2" | bc -l)"; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
wait_mounted() { for _ in $(seq 1 600); do mountpoint -q "$1" && return 0; sleep 0.01; done; echo "mount of $1 failed" >&2; return 1; }
problem() { echo "   !! $*"; echo "$*" >> "$fails"; }

# ---- test data ----------------------------------------------------------------------------
n_big=$((mib / 5))
mkdir -p "$work/src/photos" "$work/src/small"
for i in $(seq -w 1 $n_big); do head -c $((5 << 20)) /dev/urandom > "$work/src/photos/p$i.jpg"; done
python3 - "$work/src/small" <<'EOF'
import os, random, sys
r = random.Random(1)
for d in range(20):
    os.makedirs(f"{sys.argv[1]}/d{d:02}")
    for f in range(100):
        with open(f"{sys.argv[1]}/d{d:02}/img{f:03}.jpg", "wb") as o:
            o.write(r.randbytes(10240))
EOF

# ---- consentfs: imported, reviewed, a user with a read grant ------------------------------
c=$work/consentfs; mkdir -p "$c/mnt"
export CONSENTFS_STORE=$c/store CONSENTFS_KEY_FILE=$c/key
"$bin" init 2>/dev/null
"$bin" import "$work/src" >/dev/null
"$bin" user add root >/dev/null; "$bin" user grant root --purpose website >/dev/null
"$bin" --json ls --user root --purpose website --hidden \
  | python3 -c 'import json,sys; print("\n".join(str(i["asset"]) for i in json.load(sys.stdin)))' \
  | xargs -n 500 "$bin" mark --no-persons >/dev/null
visible=$("$bin" --json ls --user root --purpose website | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$visible" = $((n_big + 2000)) ] || problem "consentfs shows $visible files, expected $((n_big + 2000))"

# ---- peers: the same files in gocryptfs and securefs --------------------------------------
declare -A dir
g=$work/gocryptfs; mkdir -p "$g/cipher" "$g/mnt"; echo pw > "$g/pw"
gocryptfs -q -init -passfile "$g/pw" "$g/cipher" >/dev/null 2>&1
gocryptfs -q -nosyslog -passfile "$g/pw" "$g/cipher" "$g/mnt"; wait_mounted "$g/mnt"; dir[gocryptfs]=$g/mnt
s=$work/securefs; mkdir -p "$s/cipher" "$s/mnt"
securefs create --pass pw --pbkdf pkcs5-pbkdf2-hmac-sha256 -r 1 "$s/cipher" >/dev/null 2>&1 \
  || securefs create --pass pw "$s/cipher" >/dev/null
securefs mount -b --pass pw --log "$s/log" "$s/cipher" "$s/mnt" >/dev/null 2>&1; wait_mounted "$s/mnt"; dir[securefs]=$s/mnt
dir[tmpfs]=$work/src
for t in gocryptfs securefs; do cp -r "$work/src/photos" "$work/src/small" "${dir[$t]}/"; done
peers=(gocryptfs securefs tmpfs)

echo "consentfs export benchmark, all backed by /dev/shm; peers copy the same files out of their mount"
out=$work/out
# ---- 1. photos ----------------------------------------------------------------------------
drop; E1=$(secs "$bin" export --user root --purpose website --collection photos "$out/c1")
declare -A P1; for t in "${peers[@]}"; do drop; P1[$t]=$(secs cp -r "${dir[$t]}/photos" "$out/$t-1"); done
echo "== 1. export of $n_big photos, $((n_big * 5)) MiB, cold cache =="
printf "%-10s %7.3f s  %6.0f MiB/s   (with manifest, fsync per file)\n" consentfs "$E1" "$(echo "$n_big * 5 / $E1" | bc -l)"
for t in "${peers[@]}"; do
  printf "%-10s %7.3f s  %6.0f MiB/s   consentfs takes %sx (cp -r)\n" $t "${P1[$t]}" "$(echo "$n_big * 5 / ${P1[$t]}" | bc -l)" "$(ratio "$E1" "${P1[$t]}")"
done
diff -rq "$work/src/photos" "$out/c1/photos" >/dev/null || problem "consentfs export differs from the originals"

# ---- 2. small files -----------------------------------------------------------------------
drop; E2=$(secs "$bin" export --user root --purpose website --collection small "$out/c2")
declare -A P2; for t in "${peers[@]}"; do drop; P2[$t]=$(secs cp -r "${dir[$t]}/small" "$out/$t-2"); done
echo "== 2. export of 2,000 files of 10 KiB, cold cache =="
printf "%-10s %7.3f s  %6.0f files/s\n" consentfs "$E2" "$(echo "2000 / $E2" | bc -l)"
for t in "${peers[@]}"; do
  printf "%-10s %7.3f s  %6.0f files/s   consentfs takes %sx (cp -r)\n" $t "${P2[$t]}" "$(echo "2000 / ${P2[$t]}" | bc -l)" "$(ratio "$E2" "${P2[$t]}")"
done
diff -rq "$work/src/small" "$out/c2/small" >/dev/null || problem "consentfs small export differs"

# ---- 3. sync, nothing changed -------------------------------------------------------------
drop; E3=$(secs "$bin" export --user root --purpose website --collection photos --sync "$out/c1")
rsync -a "${dir[gocryptfs]}/photos/" "$out/gocryptfs-1/"   # once, to carry the mtimes over
drop; R3=$(secs rsync -a "${dir[gocryptfs]}/photos/" "$out/gocryptfs-1/")
drop; R3c=$(secs rsync -a --checksum "${dir[gocryptfs]}/photos/" "$out/gocryptfs-1/")
echo "== 3. export --sync with nothing changed ($n_big photos) =="
printf "consentfs --sync      %7.3f s   (re-hashes every file)\n" "$E3"
printf "gocryptfs rsync -a    %7.3f s   (size+mtime only)   consentfs %sx\n" "$R3" "$(ratio "$E3" "$R3")"
printf "gocryptfs rsync -c    %7.3f s   (checksums)         consentfs %sx\n" "$R3c" "$(ratio "$E3" "$R3c")"

# ---- 4. verify ----------------------------------------------------------------------------
drop; V=$(secs "$bin" export verify "$out/c1")
echo "== 4. export verify ($n_big photos): $(printf %.3f "$V") s"

# ---- 5. the access log --------------------------------------------------------------------
"$bin" mount "$c/mnt" 2>"$c/log" & pids+=($!); wait_mounted "$c/mnt"
before=$("$bin" --json audit list | python3 -c 'import json,sys; print(sum(1 for e in json.load(sys.stdin) if e["action"]=="access.open"))')
drop; F=$(secs sh -c "cat '$c/mnt/root/website/small'/*/* > /dev/null")
after=$("$bin" --json audit list | python3 -c 'import json,sys; print(sum(1 for e in json.load(sys.stdin) if e["action"]=="access.open"))')
drop; S=$(secs sh -c "cat '$c/mnt/root/website/small'/*/* > /dev/null")
again=$("$bin" --json audit list | python3 -c 'import json,sys; print(sum(1 for e in json.load(sys.stdin) if e["action"]=="access.open"))')
drop; G=$(secs sh -c "cat '${dir[gocryptfs]}/small'/*/* > /dev/null")
echo "== 5. reading 2,000 small files through the mount, cold cache =="
printf "consentfs, first time today   %7.3f s   %d opens logged\n" "$F" $((after - before))
printf "consentfs, again              %7.3f s   %d opens logged\n" "$S" $((again - after))
printf "gocryptfs                     %7.3f s\n" "$G"
printf "cost of logging an open: %.2f ms\n" "$(echo "($F - $S) * 1000 / 2000" | bc -l)"
[ $((after - before)) = 2000 ] || problem "expected 2000 logged opens, got $((after - before))"
[ $((again - after)) = 0 ] || problem "the second read logged $((again - after)) opens"
"$bin" audit verify >/dev/null || problem "audit verify failed"

if [ -s "$fails" ]; then echo "== problems =="; cat "$fails"; else echo "== no problems: exports equal the originals, counts check out =="; fi
