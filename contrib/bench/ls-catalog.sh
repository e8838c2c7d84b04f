#!/usr/bin/env bash
# `consentfs ls` on a generated catalog: 100,000 assets, 10,000 persons, 30,000 consent events.
# Prints wall time and peak resident memory of the ls (and of the generation, for reference).
# Usage: contrib/bench/ls-catalog.sh [ASSETS PERSONS EVENTS]
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
assets=${1:-100000}; persons=${2:-10000}; events=${3:-30000}
(cd "$here" && cargo build --release -q)
bin=$here/target/release/consentfs
work=$(mktemp -d /dev/shm/consentfs-ls.XXXXXX)
trap 'rm -rf "$work"' EXIT
export CONSENTFS_STORE=$work/store CONSENTFS_KEY_FILE=$work/key
"$bin" init
measure() { /usr/bin/time -f "%e %M" "$@" 2>&1 >/dev/null | tail -1; }
read -r gsecs gkib < <(measure "$bin" generate --assets "$assets" --persons "$persons" --events "$events")
echo "generate_seconds $gsecs"
for p in website print; do
  read -r secs kib < <(measure "$bin" ls --user bench --purpose $p)
  read -r jsecs jkib < <(measure "$bin" --json ls --user bench --purpose $p --hidden)
  visible=$("$bin" --json ls --user bench --purpose $p | grep -c '"asset"')
  echo "ls_${p}_seconds $secs peak_rss_mib $((kib / 1024)) visible $visible of $assets"
  echo "ls_${p}_hidden_json_seconds $jsecs peak_rss_mib $((jkib / 1024))"
done
