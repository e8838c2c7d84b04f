#!/usr/bin/env bash
# A team library (catalog order in PostgreSQL, objects in a shared folder) against a store of
# its own, same run, same machine, everything on /dev/shm, PostgreSQL on loopback
# (contrib/pg-server.sh):
#
#   1. import of one file, a write through the mount (`dd conv=fsync`), a cold read through
#      the mount (caches dropped), 200 new files of 10 KiB saved through the mount
#   2. start time (until the mount answers) and resident memory then, with ASSETS generated
#      assets (`consentfs generate`)
#   3. cross-machine revocation: machine b records a withdrawal (the command returns), how
#      long until a lookup of the photo fails in machine a's mount; p50/p99 over TRIES
#
# Run as root (mounts, drop_caches). Usage: contrib/bench/team.sh [MiB] [ASSETS] [TRIES]
# (defaults 256, 100000, 100)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
mib=${1:-256}
assets=${2:-100000}
tries=${3:-100}
(cd "$here" && cargo build --release -q)
bin=$here/target/release/consentfs
work=$(mktemp -d /dev/shm/consentfs-teambench.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for m in "$work"/*/mnt*; do mountpoint -q "$m" 2>/dev/null && { fusermount3 -u "$m" 2>/dev/null || umount -l "$m"; }; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  bash "$here/contrib/pg-server.sh" stop "$work/pg" 2>/dev/null || true
  sleep 0.5; rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
secs() { local s e; s=$(now); "$@" >/dev/null 2>&1; e=$(now); echo "$e - $s" | bc -l; }
rate() { echo "scale=0; $2 / $1" | bc -l; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
wait_mounted() { for _ in $(seq 1 3000); do mountpoint -q "$1" && return 0; sleep 0.01; done; echo "mount of $1 failed" >&2; return 1; }
mib_of() { echo $(( $(awk '/VmRSS/ {print $2}' "/proc/$1/status") / 1024 )); }

url=$(bash "$here/contrib/pg-server.sh" start "$work/pg" 25999)
psql_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
newdb() { "$psql_bin/createdb" -h 127.0.0.1 -p 25999 -U consentfs "$1"; echo "${url%/*}/$1"; }
head -c $((mib << 20)) /dev/urandom > "$work/big.raw"

# machine settings: kind (own|team), name (a|b), [database URL]
use() {
  local kind=$1 m=$2
  export CONSENTFS_KEY_FILE=$work/key CONSENTFS_ANCHOR=$work/$kind-$m.anchor CONSENTFS_SOCKET=$work/$kind-$m.sock
  if [[ $kind == own ]]; then
    export CONSENTFS_STORE=$work/own/store
    unset CONSENTFS_REPLICA
  else
    export CONSENTFS_STORE=$3 CONSENTFS_REPLICA=$work/$kind/replica-$m
  fi
}

declare -A imp wr cold small start rss
for kind in own team; do
  c=$work/$kind; mkdir -p "$c/mnt-a" "$c/mnt-b"
  db=$(newdb "$kind" 2>/dev/null || true)
  use "$kind" a "$db"
  if [[ $kind == team ]]; then "$bin" --objects "file://$c/shared" init 2>/dev/null; else "$bin" init 2>/dev/null; fi
  imp[$kind]=$(secs "$bin" import --collection bench "$work/big.raw")
  "$bin" mark bench/big.raw --no-persons >/dev/null
  "$bin" user add root >/dev/null; "$bin" user grant root --purpose website --access write >/dev/null
  "$bin" mount "$c/mnt-a" 2>"$c/log-a" & pids+=($!); wait_mounted "$c/mnt-a"
  wr[$kind]=$(secs dd if="$work/big.raw" of="$c/mnt-a/root/website/bench/written.raw" bs=1M conv=fsync)
  drop; cold[$kind]=$(secs cat "$c/mnt-a/root/website/bench/big.raw")
  mkdir -p "$c/small"; for i in $(seq 1 200); do head -c 10240 /dev/urandom > "$c/small/$i.jpg"; done
  small[$kind]=$(secs bash -c "cp $c/small/*.jpg $c/mnt-a/root/website/bench/ && sync")
  fusermount3 -u "$c/mnt-a"; sleep 0.5
  # start time and memory with the generated catalog
  "$bin" generate --assets "$assets" --persons $((assets / 10)) --events $((assets * 3 / 10)) >/dev/null 2>&1
  s=$(now); "$bin" mount "$c/mnt-a" 2>"$c/log-a2" & p=$!; pids+=($p); wait_mounted "$c/mnt-a"
  e=$(now); start[$kind]=$(echo "$e - $s" | bc -l); rss[$kind]=$(mib_of $p)
done

# revocation across machines: b records, a's mount stops showing
c=$work/team
use team b "${url%/*}/team"
"$bin" person add "Bench Person" >/dev/null
"$bin" link bench/big.raw "Bench Person" >/dev/null
"$bin" consent grant "Bench Person" --purpose website >/dev/null
photo=$c/mnt-a/root/website/bench/big.raw
lat=$(python3 - "$bin" "$photo" "$tries" <<'EOF'
import os, subprocess, sys, time
bin, photo, tries = sys.argv[1], sys.argv[2], int(sys.argv[3])
def run(*a):
    subprocess.run([bin, *a], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
out = []
for _ in range(tries):
    run("consent", "grant", "Bench Person", "--purpose", "website")
    t = time.time()
    while not os.path.exists(photo):
        if time.time() - t > 10: sys.exit("the grant did not arrive")
        time.sleep(0.0005)
    run("consent", "withdraw", "Bench Person", "--purpose", "website")
    t = time.time()
    while os.path.exists(photo):
        if time.time() - t > 10: sys.exit("the withdrawal did not arrive")
        time.sleep(0.0002)
    out.append((time.time() - t) * 1000)
out.sort()
p = lambda q: out[min(len(out) - 1, round((len(out) - 1) * q))]
print(f"{p(0.5):.1f} {p(0.99):.1f} {out[-1]:.1f}")
EOF
)
read -r p50 p99 worst <<<"$lat"

echo "== a store of its own vs a team library (PostgreSQL on loopback, objects in a shared folder), $mib MiB, $assets assets =="
for kind in own team; do
  printf "%-5s import %5s MiB/s  write %5s MiB/s  read cold %5s MiB/s  200 new files of 10 KiB %.2f s  start with %s assets %.2f s, %s MiB resident\n" \
    "$kind" "$(rate "${imp[$kind]}" "$mib")" "$(rate "${wr[$kind]}" "$mib")" "$(rate "${cold[$kind]}" "$mib")" "${small[$kind]}" "$assets" "${start[$kind]}" "${rss[$kind]}"
done
echo "withdrawal on machine b -> lookup fails in machine a's mount, after b's command returned: p50 $p50 ms, p99 $p99 ms, worst $worst ms ($tries tries)"
