#!/usr/bin/env bash
# Replay the attacks of issue 11 ("Withdrawal and erasure that no one can defeat") against a
# consentfs binary: builds a scratch store, mounts it, tries each finding as a local user would
# and prints PASS or FAIL per finding. Exit status: the number of failures.
#
#   sudo contrib/attack/replay.sh [path/to/consentfs]      (default: target/release/consentfs)
#
# Needs root (it mounts, creates a scratch OS user `cfs-attacker` and a small tmpfs), fuse3,
# python3 and exiftool-free coreutils. Everything is created under a new folder in /tmp and
# removed at the end.
set -uo pipefail
bin=$(readlink -f "${1:-target/release/consentfs}")
[ -x "$bin" ] || { echo "no consentfs binary at $bin (build with cargo build --release)"; exit 2; }
[ "$(id -u)" = 0 ] || { echo "run as root (mounts, a scratch user, a tmpfs)"; exit 2; }

w=$(mktemp -d /tmp/consentfs-replay.XXXXXX)
chmod 755 "$w"
export CONSENTFS_STORE=$w/store CONSENTFS_KEY_FILE=$w/key CONSENTFS_ANCHOR=$w/anchor.json
fails=0
pass() { printf 'PASS  %s\n' "$1"; }
fail() { printf 'FAIL  %s\n' "$1"; fails=$((fails + 1)); }
check() { if eval "$2" >/dev/null 2>&1; then pass "$1"; else fail "$1"; fi; }
cfs() { "$bin" "$@"; }
mnt=$w/mnt
daemon=
start_mount() {
  mkdir -p "$mnt"
  RUST_LOG=info "$bin" mount "$mnt" 2>>"$w/mount.log" &
  daemon=$!
  for _ in $(seq 100); do grep -q " $mnt " /proc/self/mountinfo && break; sleep 0.05; done
  chmod 755 "$mnt" 2>/dev/null || true
}
stop_mount() {
  [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null
  daemon=
  umount -l "$mnt" 2>/dev/null || true
}
cleanup() { stop_mount; umount -l "$w/disk" 2>/dev/null; rm -rf "$w"; }
trap cleanup EXIT
id cfs-attacker >/dev/null 2>&1 || useradd --no-create-home --shell /usr/sbin/nologin --user-group cfs-attacker
as_attacker() { setpriv --reuid=cfs-attacker --regid=cfs-attacker --clear-groups -- sh -c "$1"; }

(umask 000; cfs init >/dev/null 2>&1)
mkdir -p "$w/shoot" && printf 'photo of anna' >"$w/shoot/a.jpg" && printf 'photo of bert' >"$w/shoot/b.jpg"
cfs import "$w/shoot" >/dev/null
cfs person add Anna >/dev/null; cfs person add Bert >/dev/null
cfs link a.jpg Anna >/dev/null; cfs link b.jpg Bert >/dev/null
cfs consent grant Anna --purpose website >/dev/null; cfs consent grant Bert --purpose website >/dev/null
cfs user add root >/dev/null; cfs user grant root --purpose website --access delete >/dev/null
start_mount
site=$mnt/root/website

# 1. the store is private whatever the umask; nobody else can lock the catalog
check "1  store is 0700 and its files 0600 under umask 000" \
  "[ -z \"\$(find '$CONSENTFS_STORE' \( -type d ! -perm 700 \) -o \( -type f ! -perm 600 \))\" ]"
check "1  another user cannot open catalog.db-shm to lock it" \
  "! as_attacker \"python3 -c 'import os; os.open(\\\"$CONSENTFS_STORE/catalog.db-shm\\\", os.O_RDONLY)'\""

# 2. absurd spans are refused, and the mount keeps applying withdrawals
check "2  purpose retention 99999999999w is refused" \
  "! cfs purpose retention website 99999999999w"
check "2  consent grant --until 9223372036854775807s is refused" \
  "! cfs consent grant Anna --purpose print --until 9223372036854775807s"
cfs consent withdraw Bert --purpose website >/dev/null
sleep 0.3
check "2  a withdrawal still reaches the mount afterwards" "[ ! -e '$site/b.jpg' ]"

# 4. copies follow the consent of what they were made from
cp "$site/a.jpg" "$site/copy.jpg"
check "4  a copy cannot be renamed over another person's photo" "! mv '$site/copy.jpg' '$site/b.jpg'"
cfs consent withdraw Anna --purpose website >/dev/null
sleep 0.3
check "4  the copy disappears with the original's consent" "[ ! -e '$site/copy.jpg' ]"
cfs consent grant Anna --purpose website >/dev/null
sleep 0.3

# 3. a backup-style save, then erasure: nothing of the photo stays decryptable
mv "$site/a.jpg" "$site/a.jpg~" && printf 'photo of anna, edited' >"$site/a.jpg" && rm -f "$site/a.jpg~"
stop_mount
cfs person erase Anna --yes >/dev/null
check "3  erase leaves no version of the photo decryptable" \
  "! cfs cat 1 --version 1 && ! cfs cat 1 --version 2"
check "3  erase leaves the copy made in the mount undecryptable" \
  "[ -z \"\$(for a in \$(seq 3 12); do cfs cat \$a 2>/dev/null; done | grep -a anna)\" ]"

# 5. a rolled-back catalog is refused
cp -a "$CONSENTFS_STORE" "$w/backup"
cfs person add Cas >/dev/null
rm -rf "$CONSENTFS_STORE" && cp -a "$w/backup" "$CONSENTFS_STORE"
check "5  an older catalog put back is refused" "! cfs ls --user root --purpose website"
check "5  audit verify refuses it too" "! cfs audit verify"
cfs --accept-rollback audit verify >/dev/null 2>&1

# 10. plaintext exports are private
printf 'photo of bert 2' >"$w/shoot/c.jpg"; cfs import "$w/shoot/c.jpg" >/dev/null; cfs mark c.jpg --no-persons >/dev/null
(umask 022; cfs export --user root --purpose website "$w/export" >/dev/null)
check "10 an export is 0700/0600 under umask 022" \
  "[ -z \"\$(find '$w/export' \( -type d ! -perm 700 \) -o \( -type f ! -perm 600 \))\" ]"
check "10 another user cannot read an exported photo" "! as_attacker 'cat $w/export/c.jpg'"

# 11. import follows no symlinks
mkdir -p "$w/evil" && ln -sf /etc/passwd "$w/evil/passwd.jpg" && printf x >"$w/evil/ok.jpg"
cfs import "$w/evil" --collection evil >/dev/null 2>&1
check "11 a symlink in an imported folder is not followed" "! cfs cat evil/passwd.jpg"

# 12. control characters never reach the terminal raw
printf 'x' >"$w/shoot/$(printf 'e\033[31mvil.jpg')"; cfs import "$w/shoot/$(printf 'e\033[31mvil.jpg')" >/dev/null 2>&1
check "12 ls --hidden escapes control characters" \
  "! cfs ls --user root --purpose website --hidden | grep -q \$'\\033'"

# 13. a FIFO as manifest does not hang verify
mkdir -p "$w/fifo" && mkfifo "$w/fifo/manifest.json"
check "13 export verify of a FIFO manifest ends promptly" "timeout 10 $bin export verify '$w/fifo'; [ \$? -ne 124 ]"

# 19. a child cannot be a guardian
cfs person add Kid --born "$(date -d '-11 years' +%F)" >/dev/null; cfs person add Other >/dev/null
check "19 an 11-year-old cannot be registered as a guardian" "! cfs person guardian Other Kid"

echo "$fails finding(s) failed"
exit "$fails"
