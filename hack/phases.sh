#!/usr/bin/env bash
# Times the phases of make test and prints them as a table at its end, so
# that a run (a cold one above all: docs/testing.md) shows where its minutes
# go. A phase that fails is recorded as failed and the table is printed at
# once, since make stops there.
# Usage: hack/phases.sh --reset          start a new table
#        hack/phases.sh NAME CMD [ARG...] run CMD as the phase NAME
#        hack/phases.sh --table          print the table
# The table is kept in $PHASES_FILE (default bin/test-phases.tsv).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
file=${PHASES_FILE:-$root/bin/test-phases.tsv}

table() {
	local name secs result total=0 began=
	printf '\n%-22s %8s  %s\n' "make test phase" "duration" "result"
	while IFS=$'\t' read -r name secs result; do
		if [[ "$name" == --began ]]; then began=$secs && continue; fi
		printf '%-22s %4dm%02ds  %s\n' "$name" $((secs / 60)) $((secs % 60)) "$result"
		total=$((total + secs))
	done <"$file"
	printf '%-22s %4dm%02ds\n' "sum of the phases" $((total / 60)) $((total % 60))
	if [[ -n "$began" ]]; then
		local wall=$(($(date +%s) - began))
		printf '%-22s %4dm%02ds\n' "wall clock" $((wall / 60)) $((wall % 60))
	fi
}

case "${1:-}" in
--reset)
	mkdir -p "$(dirname "$file")"
	printf -- '--began\t%d\n' "$(date +%s)" >"$file"
	exit 0
	;;
--table)
	table
	exit 0
	;;
"" | -*)
	sed -n '2,9s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	exit 2
	;;
esac

name=$1
shift
[[ -f "$file" ]] || { mkdir -p "$(dirname "$file")" && : >"$file"; }
start=$SECONDS
"$@"
rc=$?
result=ok
((rc == 0)) || result="failed (exit $rc)"
printf '%s\t%d\t%s\n' "$name" $((SECONDS - start)) "$result" >>"$file"
if ((rc != 0)); then
	table >&2
fi
exit $rc
