#!/usr/bin/env bash
# The mount at the size of an organisation's archive (issue 14, item 4), for 100,000 and
# 1,000,000 assets side by side (persons and consent events scale along: a tenth and 0.3x).
# Per size: generate time; seconds until the mount answers and resident memory then; `find`
# over the full website view and memory after it; withdraw -> lookup fails (p50/p99 of 100);
# how late an expiry hides; `consentfs ls` for one user and purpose; import of 10,000 small
# photos into that store, against into an empty one.
# Usage: contrib/bench/scale.sh [SIZES...]   (default: 100000 1000000)
# Needs root (the mount serves every user; drop_caches).
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
sizes=${*:-100000 1000000}
(cd "$here" && cargo build --release -q)
bin=$here/target/release/consentfs
export CONSENTFS_BIN=$bin
work=$(mktemp -d /dev/shm/consentfs-scale.XXXXXX)
cleanup() { umount "$work"/mnt 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
now() { date +%s.%N; }
mib_of() { echo $(( $(awk '/VmRSS/ {print $2}' "/proc/$1/status") / 1024 )); }
peak() { /usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null | tail -1; }

# 10,000 small photos (2-8 KiB of random bytes), made once
mkdir -p "$work/small"
python3 - "$work/small" <<'PY'
import os, random, sys
for i in range(10000):
    with open(os.path.join(sys.argv[1], f"s{i:05d}.jpg"), "wb") as f:
        f.write(os.urandom(random.randint(2048, 8192)))
PY
import_secs() { local s; s=$(now); "$bin" import --collection "small$1" "$work/small" >/dev/null; echo "$(now) - $s" | bc; }

# the reference: into an empty store
export CONSENTFS_STORE=$work/empty CONSENTFS_KEY_FILE=$work/key-empty CONSENTFS_ANCHOR=$work/anchor-empty
"$bin" init >/dev/null
empty_import=$(import_secs 0)
echo "import_10000_small_into_empty_store_s $empty_import"

for n in $sizes; do
  echo "== $n assets, $((n / 10)) persons, $((n * 3 / 10)) consent events"
  export CONSENTFS_STORE=$work/s$n CONSENTFS_KEY_FILE=$work/key$n CONSENTFS_ANCHOR=$work/anchor$n
  "$bin" init >/dev/null
  read -r gsecs _ < <(peak "$bin" generate --assets "$n" --persons $((n / 10)) --events $((n * 3 / 10)))
  echo "generate_s $gsecs"
  "$bin" user add root >/dev/null 2>&1 || true
  for p in website print; do "$bin" user grant root --purpose $p --access read >/dev/null; done
  mkdir -p "$work/mnt"
  sync; echo 3 > /proc/sys/vm/drop_caches
  s=$(now)
  CONSENTFS_SOCKET=$work/sock$n "$bin" mount "$work/mnt" 2>"$work/log$n" & pid=$!
  until [ -d "$work/mnt/root/website" ]; do
    kill -0 $pid 2>/dev/null || { cat "$work/log$n"; exit 1; }
    sleep 0.02
  done
  echo "mount_answers_s $(echo "$(now) - $s" | bc) resident_mib $(mib_of $pid)"
  s=$(now)
  files=$(find "$work/mnt/root/website" -type f | wc -l)
  echo "find_website_s $(echo "$(now) - $s" | bc) files $files resident_mib $(mib_of $pid)"
  /usr/bin/python3 "$here/contrib/bench/scale_probe.py" withdraw "$work/mnt/root/website" 100
  /usr/bin/python3 "$here/contrib/bench/scale_probe.py" expiry "$work/mnt/root/print"
  echo "resident_mib_after_all $(mib_of $pid) peak_mib $(( $(awk '/VmHWM/ {print $2}' /proc/$pid/status) / 1024 ))"
  # `ls` without the key goes through the daemon, which answers from the mount's index
  for j in "" --json; do
    read -r lsecs lkib < <(peak env -u CONSENTFS_KEY_FILE -u CONSENTFS_STORE \
      CONSENTFS_SOCKET="$work/sock$n" "$bin" $j ls --user root --purpose website)
    echo "ls${j:+_json}_through_daemon_s $lsecs client_peak_mib $((lkib / 1024)) daemon_resident_mib_after $(mib_of $pid)"
  done
  umount "$work/mnt"; wait $pid || true
  # with the key, on the catalog (no daemon)
  read -r lsecs lkib < <(peak "$bin" ls --user root --purpose website)
  echo "ls_with_key_on_catalog_s $lsecs peak_mib $((lkib / 1024))"
  echo "import_10000_small_s $(import_secs "$n") (empty store: $empty_import)"
  rm -rf "$work/s$n"
done
