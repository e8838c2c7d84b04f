#!/usr/bin/env bash
# A scripted tour of the consentfs command line on a fresh sample store.
# Usage: contrib/walkthrough.sh [DIR]   (default: a new temporary directory)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${CONSENTFS_BIN:-$here/target/release/consentfs}
[ -x "$bin" ] || bin=$here/target/debug/consentfs
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 2; }
dir=${1:-$(mktemp -d /tmp/consentfs-tour.XXXXXX)}
mkdir -p "$dir"
export CONSENTFS_STORE=$dir/store CONSENTFS_KEY_FILE=$dir/store.key

step() { printf '\n\033[1m$ consentfs %s\033[0m\n' "$*"; "$bin" "$@" || true; }

# sample photos: a few generated images (plain bytes if ImageMagick is missing)
mkdir -p "$dir/shoot/day1" "$dir/shoot/day2"
make_photo() {
  if command -v convert >/dev/null; then convert -size 320x200 "plasma:$2" "$1" 2>/dev/null || printf 'photo %s' "$1" > "$1"
  else printf 'photo %s' "$1" > "$1"; fi
}
make_photo "$dir/shoot/day1/anna.jpg" red-yellow
make_photo "$dir/shoot/day1/group.jpg" blue-green
make_photo "$dir/shoot/day2/kees.jpg" orange-purple
make_photo "$dir/shoot/day2/empty-hall.jpg" grey-white

step init
step import --collection events/2026 "$dir/shoot"
step person add "Anna de Vries" --born 1990-03-01
step person add "Kees Jansen" --born 2016-05-05
step person add "Marja Jansen"
step person guardian "Kees Jansen" "Marja Jansen"
step link events/2026/day1/anna.jpg "Anna de Vries"
step link events/2026/day1/group.jpg "Anna de Vries" "Kees Jansen"
step link events/2026/day2/kees.jpg "Kees Jansen"
step mark events/2026/day2/empty-hall.jpg --no-persons
step consent grant "Anna de Vries" --purpose website,print --until 5y
step consent grant "Kees Jansen" --purpose website          # refused: Kees is under 16
step consent grant "Kees Jansen" --purpose website --by "Marja Jansen" --until 1y
# `user add` needs an OS account: a `designer` account if there is one, else the one running this
designer=designer
id designer >/dev/null 2>&1 || designer=$(id -un)
step user add "$designer"
step user grant "$designer" --purpose website,print --access write
step ls --user "$designer" --purpose website --hidden
step ls --user "$designer" --purpose print --hidden
step consent withdraw "Anna de Vries" --purpose website
step ls --user "$designer" --purpose website --hidden
step why events/2026/day1/group.jpg --user "$designer" --purpose website
step expiring --within 10y
step consent grant "Kees Jansen" --purpose print --by "Marja Jansen"
step export --user "$designer" --purpose print "$dir/print-export" --strip-location
step export verify "$dir/print-export"
step consent withdraw "Kees Jansen" --purpose print --by "Marja Jansen"
step export --user "$designer" --purpose print "$dir/print-export" --sync --strip-location
step audit report --person "Kees Jansen"
step consent receipt 1
step person report "Kees Jansen" "$dir/request-kees"
step person erase "Anna de Vries"
step retention apply
step audit verify
echo
echo "store: $dir/store (key file $dir/store.key); try: CONSENTFS_STORE=$dir/store CONSENTFS_KEY_FILE=$dir/store.key $bin --help"
