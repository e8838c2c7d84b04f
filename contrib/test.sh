#!/usr/bin/env bash
# The whole test suite, as CI runs it: first on stores of their own (the embedded default),
# then again with every test's store a team library (the catalog's order kept by a PostgreSQL
# server this script starts on loopback, objects in a shared folder): one test matrix, the
# same tests. Arguments go to both `cargo nextest run`s (e.g. a test filter).
set -uo pipefail
cd "$(dirname "$0")/.."

cargo nextest run --all-targets --no-fail-fast "$@"
own=$?

dir=$(mktemp -d /tmp/consentfs-test-pg.XXXXXX)
trap 'bash contrib/pg-server.sh stop "$dir"; rm -rf "$dir"' EXIT
for _ in $(seq 1 20); do
  port=$((40000 + RANDOM % 20000))
  if url=$(bash contrib/pg-server.sh start "$dir" "$port"); then
    break
  fi
  url=
done
if [[ -z $url ]]; then
  echo "test.sh: no PostgreSQL server could be started for the team run" >&2
  exit 1
fi
echo "test.sh: the same tests on team libraries (PostgreSQL at $url)" >&2
CONSENTFS_TEST_TEAM=$url cargo nextest run --all-targets --no-fail-fast "$@"
team=$?

if (( own != 0 || team != 0 )); then
  echo "test.sh: failed (stores of their own: exit $own; team libraries: exit $team)" >&2
  exit 1
fi
