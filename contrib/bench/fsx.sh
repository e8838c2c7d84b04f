#!/usr/bin/env bash
# fsx-style run (contrib/bench/fsx.py) through the mount, side by side with gocryptfs and plain
# tmpfs, all backed by tmpfs (/dev/shm), in one run (issue 13, "Measure and report").
#
# One file of 1 MiB random bytes (on consentfs an imported, reviewed photo-like asset, saved
# over in place as an editor would), then N random operations with the same seed on each
# target: writes at random offsets and lengths, truncates up and down, reads checked against an
# in-memory model, fsync, close and reopen. Prints the time per target and the ratio to
# gocryptfs; for consentfs the store's bytes on disk (du of objects/) against the file's size,
# the versions kept, and the bytes after thinning with a policy that keeps only the current
# version and the original (the default policy keeps everything for 7 days, so thins nothing).
# Run as root. Usage: contrib/bench/fsx.sh [OPS] [SEED]   (default 20000 1)
ops=${1:-20000}; seed=${2:-1}
prepare_import() { head -c $((1 << 20)) /dev/urandom > "$1/fsx.bin"; }
source "$(dirname "$0")/targets.sh"
fsx=$here/contrib/bench/fsx.py
c_before=$(store_bytes)

echo "fsx: $ops operations, seed $seed, one file of 1 MiB (max 1 MiB, ops up to 64 KiB), all backed by /dev/shm"
declare -A T S
fail=0
for t in "${tools[@]}"; do
  out=$(/usr/bin/python3 "$fsx" "${dir[$t]}/fsx.bin" --seed "$seed" --ops "$ops" --log "$work/$t.oplog.json") || true
  echo "   $t: $out" >> "$work/fsx.out"
  T[$t]=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d.get("seconds", 0))' "$out")
  S[$t]=$(python3 -c 'import json,sys; d=json.loads(sys.argv[1]); print(d.get("final_size", -1))' "$out")
  case $out in *'"ok": true'*) ;; *) fail=1; echo "!! $t: $out"
    cp "$work/$t.oplog.json" "/tmp/fsx-$t-seed$seed.oplog.json" 2>/dev/null && echo "   operations up to the failure: /tmp/fsx-$t-seed$seed.oplog.json";;
  esac
done
echo "== time, seconds (ratio to gocryptfs) =="
for t in "${tools[@]}"; do printf "%-10s %7.3f s   %5sx gocryptfs   final size %s\n" "$t" "${T[$t]}" "$(ratio "${T[$t]}" "${T[gocryptfs]}")" "${S[$t]}"; done
for t in gocryptfs tmpfs; do cmp -s "${dir[consentfs]}/fsx.bin" "${dir[$t]}/fsx.bin" || { fail=1; echo "!! consentfs and $t end with different content"; }; done
echo "== per target, seconds by kind of operation =="; sed -n "s/.*\"seconds_by_op\": \(.*\)}$/\1/p" "$work/fsx.out" | paste <(printf "%s\n" "${tools[@]}") - | sed "s/^/   /"

sleep 1
size=${S[consentfs]}
b=$(store_bytes)
echo "== consentfs store after the run =="
echo "objects/: $b bytes on disk in $(store_objects) objects; before the run $c_before; the file is $size bytes ($(ratio "$b" "$size")x its size)"
echo "versions of bench/fsx.bin:"; "$bin" versions bench/fsx.bin 2>&1 | sed 's/^/   /'
fusermount3 -u "$c/mnt"; sleep 0.5
echo "thinning with the default policy (dry run): $("$bin" versions thin --dry-run 2>&1 | tr '\n' ' ')"
"$bin" versions policy --keep-all 0d --daily 0d --monthly 0d >/dev/null
"$bin" versions thin 2>&1 | sed 's/^/thinning, keeping only current and original: /'
b2=$(store_bytes)
echo "objects/ after thinning: $b2 bytes in $(store_objects) objects ($(ratio "$b2" "$size")x the file's size; the original import is 1 MiB of it)"
grep -iE ' (error|warn)|panic' "$c/log" | tail -5 || true
exit $fail
