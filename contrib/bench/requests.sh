#!/usr/bin/env bash
# Where a `tar x` of small files spends its time, request by request: the latency of every FUSE
# request, from the kernel's `fuse:fuse_request_send` and `fuse:fuse_request_end` tracepoints,
# summed per request type, for consentfs and gocryptfs in the same run (FILES files of 1-20
# KiB in 50 folders, then `sync`, each into a fresh mount backed by /dev/shm). `tar` waits for
# each answer, so the sum per type shows which requests make the difference.
#
# Run as root (mounts, tracepoints, drop_caches). Needs gocryptfs, perf (linux-perf), python3.
# Usage: contrib/bench/requests.sh [FILES]   (default 5000)
#   CONSENTFS_BIN=/path/to/consentfs   measures that binary instead of building this tree
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
files=${1:-5000}
if [ -n "${CONSENTFS_BIN:-}" ]; then
  bin=$(readlink -f "$CONSENTFS_BIN")
else
  (cd "$here" && cargo build --release -q) || echo "cargo build failed; using the existing binary" >&2
  bin=${CARGO_TARGET_DIR:-$here/target}/release/consentfs
fi
for t in gocryptfs perf python3 tar bc; do command -v $t >/dev/null \
  || { echo "missing $t: apt-get install gocryptfs linux-perf python3 tar bc" >&2; exit 2; }; done
perf list 'fuse:fuse_request_send' 2>/dev/null | grep -q fuse_request_send \
  || { echo "this kernel has no fuse:fuse_request_* tracepoints (Linux 6.15 or later)" >&2; exit 2; }
work=$(mktemp -d /dev/shm/consentfs-requests.XXXXXX)
chmod 700 "$work"
cleanup() {
  for m in "$work"/*/mnt; do mountpoint -q "$m" 2>/dev/null && { fusermount3 -u "$m" 2>/dev/null || umount -l "$m"; }; done
  rm -rf "$work"
}
trap cleanup EXIT
wait_mounted() { for _ in $(seq 1 600); do mountpoint -q "$1" && return 0; sleep 0.01; done; echo "mount of $1 failed" >&2; return 1; }

python3 "$here/contrib/bench/small_tree.py" "$work/tree/small" "$files" 1
tar cf "$work/small.tar" -C "$work/tree" small

# extract into $1 while tracing; the per-type sums go to $2
traced() {
  sync; echo 3 > /proc/sys/vm/drop_caches
  perf record -q -e fuse:fuse_request_send,fuse:fuse_request_end -a -o "$work/trace.data" 2>/dev/null &
  local pp=$! s e
  sleep 0.5
  s=$(date +%s.%N); tar xf "$work/small.tar" -C "$1"; sync; e=$(date +%s.%N)
  kill -INT $pp; wait $pp || true
  echo "$e - $s" | bc -l > "$2.wall"
  perf script -i "$work/trace.data" 2>/dev/null | python3 -c '
import re, sys, collections
send = {}; tot = collections.defaultdict(float); cnt = collections.Counter()
s = re.compile(r"\s(\d+\.\d+):\s+fuse:fuse_request_send: connection (\d+) req (\d+) opcode \d+ \((\w+)\)")
e = re.compile(r"\s(\d+\.\d+):\s+fuse:fuse_request_end: connection (\d+) req (\d+)")
for line in sys.stdin:
    m = s.search(line)
    if m:
        send[(m[2], m[3])] = (float(m[1]), m[4].removeprefix("FUSE_")); continue
    m = e.search(line)
    if m and (m[2], m[3]) in send:
        t, op = send.pop((m[2], m[3])); tot[op] += float(m[1]) - t; cnt[op] += 1
for op in tot:
    print(op, cnt[op], tot[op])
' > "$2"
}

# consentfs: a folder where root may write
c=$work/consentfs; mkdir -p "$c/mnt"
export CONSENTFS_STORE=$c/store CONSENTFS_KEY_FILE=$c/key
"$bin" init >/dev/null 2>&1
"$bin" user add root >/dev/null
"$bin" user grant root --purpose website --access delete >/dev/null
RUST_LOG=warn "$bin" mount "$c/mnt" 2>"$c/log" &
wait_mounted "$c/mnt"
mkdir "$c/mnt/root/website/r"
traced "$c/mnt/root/website/r" "$work/consentfs.sums"
fusermount3 -u "$c/mnt"; wait || true

g=$work/gocryptfs; mkdir -p "$g/cipher" "$g/mnt"; echo pw > "$g/pw"
gocryptfs -q -init -passfile "$g/pw" "$g/cipher" >/dev/null 2>&1
gocryptfs -q -nosyslog -passfile "$g/pw" "$g/cipher" "$g/mnt"
wait_mounted "$g/mnt"
mkdir "$g/mnt/r"
traced "$g/mnt/r" "$work/gocryptfs.sums"
fusermount3 -u "$g/mnt"

python3 - "$work/consentfs.sums" "$work/gocryptfs.sums" "$files" <<'PY'
import sys
def load(p):
    d = {}
    for line in open(p):
        op, n, t = line.split(); d[op] = (int(n), float(t))
    return d, float(open(p + ".wall").read())
(c, cw), (g, gw) = load(sys.argv[1]), load(sys.argv[2])
print(f"== tar xf of {sys.argv[3]} small files + sync: FUSE request latency per type ==")
print(f"{'request':14} {'consentfs: n':>13} {'ms':>8} {'µs each':>8}   {'gocryptfs: n':>13} {'ms':>8} {'µs each':>8}")
ops = sorted(set(c) | set(g), key=lambda o: -max(c.get(o, (0, 0))[1], g.get(o, (0, 0))[1]))
for op in ops:
    cn, ct = c.get(op, (0, 0.0)); gn, gt = g.get(op, (0, 0.0))
    ce = f"{ct / cn * 1e6:8.1f}" if cn else f"{'-':>8}"
    ge = f"{gt / gn * 1e6:8.1f}" if gn else f"{'-':>8}"
    print(f"{op:14} {cn:13d} {ct * 1000:8.1f} {ce}   {gn:13d} {gt * 1000:8.1f} {ge}")
ct = sum(t for _, t in c.values()); gt = sum(t for _, t in g.values())
print(f"{'all requests':14} {sum(n for n, _ in c.values()):13d} {ct * 1000:8.1f} {'':8}   "
      f"{sum(n for n, _ in g.values()):13d} {gt * 1000:8.1f}")
print(f"wall time: consentfs {cw:.2f} s, gocryptfs {gw:.2f} s ({cw / gw:.2f} x)")
PY
