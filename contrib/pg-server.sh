#!/usr/bin/env bash
# A PostgreSQL server on loopback, for consentfs's tests and for trying a team library
# (`--store postgres://…`): Debian's `postgresql` package, one throw-away cluster per DIR.
#
#   contrib/pg-server.sh start DIR PORT   create a cluster in DIR (if none), serve it on
#                                         127.0.0.1:PORT (and a socket in DIR), create the
#                                         database `consentfs`, print the URL to use
#   contrib/pg-server.sh stop DIR         stop the server started with DIR
#
# It listens on 127.0.0.1 only and trusts every connection from there (no password): a
# machine where other people have accounts needs `-A scram-sha-256` and a password instead
# (see README, "A team library"). Run as root, the cluster belongs to the `postgres` account
# (PostgreSQL refuses to run as root).
set -euo pipefail

die() { echo "pg-server: $*" >&2; exit 1; }

bin_dir() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [[ -n $d && -x $d/initdb ]] || die "no PostgreSQL found: apt-get install postgresql"
  echo "$d"
}

# run a PostgreSQL program as the cluster's owner
as_owner() {
  if [[ $(id -u) == 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

start() {
  local dir=$1 port=$2 bin
  bin=$(bin_dir)
  [[ $port =~ ^[0-9]+$ ]] && (( port >= 1024 && port <= 65535 )) || die "PORT must be 1024..65535"
  mkdir -p "$dir"
  chmod 700 "$dir"
  if [[ $(id -u) == 0 ]]; then
    id postgres >/dev/null 2>&1 || die "no account 'postgres' (it comes with the postgresql package)"
    chown postgres: "$dir"
  fi
  if [[ ! -f $dir/data/PG_VERSION ]]; then
    as_owner "$bin/initdb" -D "$dir/data" -U consentfs -A trust -E UTF8 --no-instructions \
      >"$dir/initdb.log" 2>&1 || die "initdb failed: $(tail -5 "$dir/initdb.log")"
  fi
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir" \
    start >/dev/null || die "the server did not start: $(tail -5 "$dir/server.log")"
  as_owner "$bin/psql" -h 127.0.0.1 -p "$port" -U consentfs -d postgres -qAt \
    -c "SELECT 1 FROM pg_database WHERE datname = 'consentfs'" | grep -q 1 \
    || as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U consentfs consentfs \
    || die "cannot create the database"
  echo "postgres://consentfs@127.0.0.1:$port/consentfs"
}

stop() {
  local dir=$1 bin
  bin=$(bin_dir)
  [[ -f $dir/data/postmaster.pid ]] || return 0
  as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
}

case ${1:-} in
  start) [[ $# == 3 ]] || die "usage: $0 start DIR PORT"; start "$2" "$3" ;;
  stop) [[ $# == 2 ]] || die "usage: $0 stop DIR"; stop "$2" ;;
  *) die "usage: $0 start DIR PORT | stop DIR" ;;
esac
