#!/usr/bin/env bash
# fio random read/write through the mount, side by side with gocryptfs and plain tmpfs, all
# backed by tmpfs (/dev/shm), in one run (issue 13, "Measure and report").
#
#   1. IOPS: fio randrw, 4 KiB blocks, 2 jobs (a file each), buffered psync, 30 s time based,
#      every block written with a crc32c header (--verify=crc32c); read and write IOPS per
#      target and the ratio to gocryptfs. (A time-based job skips fio's verify phase at the end,
#      so this run measures, and the next one checks.)
#   2. Verified: the same job with --verify_backlog, so fio reads back and checks every block it
#      wrote as it goes (half of its reads are these checks); any mismatch fails the job.
#
# consentfs: files written into a view with a write grant (new names, so drafts; each close of a
# job's file saves a version). Also prints the store's bytes on disk after the runs.
# Run as root. Usage: contrib/bench/fio.sh [SECONDS] [SIZE per job]   (default 30 64M)
secs=${1:-30}; size=${2:-64M}
command -v fio >/dev/null || apt-get install -y fio >/dev/null
source "$(dirname "$0")/targets.sh"

# fio_run TARGET NAME EXTRA...: prints "read_iops write_iops errors"
fio_run() {
  local t=$1 name=$2; shift 2
  fio --name="$name" --directory="${dir[$t]}" --rw=randrw --bs=4k --numjobs=2 --size="$size" \
    --time_based --runtime="$secs" --ioengine=psync --fallocate=none --verify=crc32c --verify_state_save=0 \
    --group_reporting --output-format=json "$@" > "$work/$t.$name.json" 2> "$work/$t.$name.err" || true
  python3 - "$work/$t.$name.json" "$work/$t.$name.err" <<'PY'
import json, sys
try:
    j = json.load(open(sys.argv[1]))["jobs"][0]
    print(round(j["read"]["iops"]), round(j["write"]["iops"]), j["error"])
except Exception:
    print(0, 0, "fio-failed:" + open(sys.argv[2]).read().strip().replace("\n", " ")[:200].replace(" ", "_"))
PY
}

echo "fio randrw 4 KiB, 2 jobs x $size, ${secs} s, buffered psync, all backed by /dev/shm"
declare -A R W E
for t in "${tools[@]}"; do read -r R[$t] W[$t] E[$t] < <(fio_run "$t" iops); done
echo "== 1. IOPS read + write (ratio of the sum to gocryptfs) =="
for t in "${tools[@]}"; do
  printf "%-10s %8s + %8s   %5sx gocryptfs   %s\n" "$t" "${R[$t]}" "${W[$t]}" \
    "$(ratio "$((R[$t] + W[$t]))" "$((R[gocryptfs] + W[gocryptfs]))")" "$([ "${E[$t]}" = 0 ] || echo "ERROR ${E[$t]}")"
done
c_bytes1=$(store_bytes); c_objs1=$(store_objects)
for t in "${tools[@]}"; do rm -f "${dir[$t]}"/iops.*; done

for t in "${tools[@]}"; do read -r R[$t] W[$t] E[$t] < <(fio_run "$t" verified --verify_backlog=1024 --verify_fatal=1); done
echo "== 2. with --verify_backlog=1024: IOPS read (half of them verifying) + write; errors =="
for t in "${tools[@]}"; do
  printf "%-10s %8s + %8s   %5sx gocryptfs   %s\n" "$t" "${R[$t]}" "${W[$t]}" \
    "$(ratio "$((R[$t] + W[$t]))" "$((R[gocryptfs] + W[gocryptfs]))")" "$([ "${E[$t]}" = 0 ] && echo "verified, no errors" || echo "ERROR ${E[$t]}")"
done
sleep 1
echo "== consentfs store after the runs =="
echo "after run 1: $c_bytes1 bytes on disk in $c_objs1 objects (2 drafts of $size; each a version at the layout's close and one at the run's)"
echo "after run 2 (run 1's drafts deleted: in the trash with their versions until purged): $(store_bytes) bytes in $(store_objects) objects"
grep -iE ' (error|warn)|panic' "$c/log" | tail -5 || true
