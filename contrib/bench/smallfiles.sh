#!/usr/bin/env bash
# Small files: `tar xf` of 5,000 files of 1-20 KiB (random content, 50 folders) plus `sync`,
# into a consentfs mount (a folder where the user has a write grant), gocryptfs, securefs and a
# plain tmpfs folder, all backed by /dev/shm, in one run; best of N runs each (fresh folder per
# run). Prints seconds and the ratio to gocryptfs (target: consentfs <= 1.0x), then checks that
# every extracted tree equals the original and that consentfs's audit chain verifies.
#
# Run as root (mounts, drop_caches). Needs gocryptfs securefs bc python3.
# Usage: contrib/bench/smallfiles.sh [RUNS] [FILES]   (defaults 3, 5000)
#   CONSENTFS_BIN=/path/to/consentfs   measures that binary instead of building this tree
#   PERF=1 contrib/bench/smallfiles.sh   also records `perf record -g` of the consentfs daemon
#   during its first run and prints the top of the report (PERF_OUT=FILE keeps perf.data).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
runs=${1:-3}
files=${2:-5000}
if [ -n "${CONSENTFS_BIN:-}" ]; then
  bin=$CONSENTFS_BIN   # another build, e.g. the previous release, for a before/after
else
  (cd "$here" && cargo build --release -q) || echo "cargo build failed; using the existing binary" >&2
  bin=${CARGO_TARGET_DIR:-$here/target}/release/consentfs
fi
for t in gocryptfs securefs bc python3 tar; do command -v $t >/dev/null \
  || { echo "missing $t: apt-get install gocryptfs securefs bc python3 tar" >&2; exit 2; }; done
work=$(mktemp -d /dev/shm/consentfs-smallbench.XXXXXX)
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
lt() { [ "$(echo "$1 < $2" | bc -l)" = 1 ]; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
wait_mounted() { for _ in $(seq 1 600); do mountpoint -q "$1" && return 0; sleep 0.01; done; echo "mount of $1 failed" >&2; return 1; }
problem() { echo "   !! $*"; echo "$*" >> "$fails"; }

# ---- test data: FILES files of 1-20 KiB of random bytes in 50 folders, another tree per run -
for r in $(seq 1 "$runs"); do
python3 "$here/contrib/bench/small_tree.py" "$work/tree$r/small" "$files" "$r"
tar cf "$work/small$r.tar" -C "$work/tree$r" small
done
kib=$(( $(du -sk "$work/tree1" | cut -f1) ))

# ---- the four file systems ----------------------------------------------------------------
declare -A dir
tools=(consentfs gocryptfs securefs tmpfs)
c=$work/consentfs; mkdir -p "$c/mnt"
export CONSENTFS_STORE=$c/store CONSENTFS_KEY_FILE=$c/key
"$bin" init 2>/dev/null
"$bin" purpose add website >/dev/null 2>&1 || true   # a new store has it already
"$bin" user add root >/dev/null; "$bin" user grant root --purpose website --access delete >/dev/null
"$bin" mount "$c/mnt" 2>"$c/log" & cpid=$!; pids+=($cpid); wait_mounted "$c/mnt"
dir[consentfs]=$c/mnt/root/website
g=$work/gocryptfs; mkdir -p "$g/cipher" "$g/mnt"; echo pw > "$g/pw"
gocryptfs -q -init -passfile "$g/pw" "$g/cipher" >/dev/null 2>&1
gocryptfs -q -nosyslog -passfile "$g/pw" "$g/cipher" "$g/mnt"; wait_mounted "$g/mnt"; dir[gocryptfs]=$g/mnt
s=$work/securefs; mkdir -p "$s/cipher" "$s/mnt"
securefs create --pass pw --pbkdf pkcs5-pbkdf2-hmac-sha256 -r 1 "$s/cipher" >/dev/null 2>&1 \
  || securefs create --pass pw "$s/cipher" >/dev/null
securefs mount -b --pass pw --log "$s/log" "$s/cipher" "$s/mnt" >/dev/null 2>&1; wait_mounted "$s/mnt"; dir[securefs]=$s/mnt
mkdir -p "$work/plain"; dir[tmpfs]=$work/plain

echo "tar xf of $files files of 1-20 KiB ($kib KiB) in 50 folders, then sync; best of $runs; all backed by /dev/shm"
declare -A X
for r in $(seq 1 "$runs"); do
  for t in "${tools[@]}"; do
    mkdir -p "${dir[$t]}/run$r"
    drop
    if [ "$t" = consentfs ] && [ "$r" = 1 ] && [ "${PERF:-0}" = 1 ]; then
      perf record -q -g -o "$work/perf.data" -p "$cpid" 2>/dev/null & perf=$!; sleep 0.5
    fi
    e=$(secs sh -c "tar xf '$work/small$r.tar' -C '${dir[$t]}/run$r'; r=\$?; sync; exit \$r")
    [ -n "${perf:-}" ] && { kill -INT "$perf"; wait "$perf" 2>/dev/null || true; unset perf; }
    [ -z "${X[$t]:-}" ] || lt "$e" "${X[$t]}" && X[$t]=$e
    printf "   run %s %-10s %7.3f s\n" "$r" "$t" "$e"
  done
done
echo "== tar xf + sync of $files small files, seconds, best of $runs (lower is better) =="
for t in "${tools[@]}"; do
  printf "%-10s %7.3f s   %5sx gocryptfs   %6.0f files/s\n" $t "${X[$t]}" "$(ratio "${X[$t]}" "${X[gocryptfs]}")" \
    "$(echo "$files / ${X[$t]}" | bc -l)"
done
r=$(ratio "${X[consentfs]}" "${X[gocryptfs]}")
if lt 1.0 "$r"; then echo ">> consentfs / gocryptfs = $r: target <= 1.0 MISSED"; else echo ">> consentfs / gocryptfs = $r: target <= 1.0 met"; fi

# ---- checks -------------------------------------------------------------------------------
for t in "${tools[@]}"; do
  for r in $(seq 1 "$runs"); do
    diff -rq "$work/tree$r/small" "${dir[$t]}/run$r/small" >/dev/null 2>&1 \
      || problem "$t: run $r: extracted tree differs from the original (diff -r)"
  done
done
fusermount3 -u "$c/mnt"; wait "$cpid" || problem "consentfs: the daemon exited with an error"
"$bin" audit verify >/dev/null 2>&1 || problem "consentfs: audit verify failed"
n=$("$bin" ls --user root --purpose website --json 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' || echo '?')
echo "   consentfs after unmount: $n drafts listed for root/website (expected $((files * runs)))"
if [ "${PERF:-0}" = 1 ] && [ -f "$work/perf.data" ]; then
  echo "== perf: top of the consentfs daemon's profile (children, first run) =="
  perf report -i "$work/perf.data" --children --sort symbol --stdio -g none --percent-limit 3 2>/dev/null \
    | grep -v '^#' | grep -v '^$' | sed 's/[ -]*$//' | head -40
  [ -z "${PERF_OUT:-}" ] || cp "$work/perf.data" "$PERF_OUT"
fi
if [ -s "$fails" ]; then
  echo "== problems =="; cat "$fails"
  echo "== consentfs log: errors and warnings (of $(wc -l < "$c/log") lines) =="
  grep -iE 'error|warn|panic|fail' "$c/log" | tail -20 || true
  exit 1
fi
echo "== no problems: every tree equals the original, the audit chain verifies =="
