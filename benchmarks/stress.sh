#!/usr/bin/env bash
# `tox` N times in a row (default 3) beside two CPU burners (`yes > /dev/null`), as issue 16 asks:
# the suite must stay green on a busy machine. Prints each run's result, wall time and load;
# each run's output is in $TMPDIR/stress-<n>.log. Usage: bash benchmarks/stress.sh [N [tox arguments, e.g. -- -p no:cacheprovider]]
set -u
cd "$(dirname "$0")/.."
runs="${1:-3}"
shift $(( $# > 0 ? 1 : 0 ))
yes > /dev/null & burner1=$!
yes > /dev/null & burner2=$!
trap 'kill "$burner1" "$burner2"' EXIT
for i in $(seq 1 "$runs"); do
  log="${TMPDIR:-/tmp}/stress-$i.log"
  echo "run $i start $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  ( time tox "$@" ) > "$log" 2>&1
  echo "run $i exit $? end $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  grep -E "passed|failed|^real" "$log" | tail -3
done
