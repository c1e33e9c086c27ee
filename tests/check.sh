#!/usr/bin/env bash
# check.sh — build herald and run every test (README command 2; CI runs it).
#
# tests/setup.sh, then `make check` (C unit tests and the integration
# tests, through automake's TAP driver). Prints the .log of every test
# script that did not pass, then, as the very last line,
# "N passed, N failed[, N skipped]" from the totals in test-suite.log
# (ERROR and XPASS count as failed). Exits non-zero on any failure, or
# when the build or `make check` itself could not run.
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! bash tests/setup.sh; then
	echo "check: tests/setup.sh failed (dependencies or build), no test ran"
	echo "0 passed, 1 failed"
	exit 1
fi

rm -f test-suite.log
make -j2 check
rc=$?

if [ ! -f test-suite.log ]; then
	echo "check: make check exited with $rc and wrote no test-suite.log"
	echo "0 passed, 1 failed"
	exit 1
fi

# Logs of the test scripts whose overall result is not a pass.
find . -name '*.trs' -not -path './.git/*' | sort | while read -r trs; do
	if grep -Eq '^:global-test-result: (FAIL|ERROR|XPASS)' "$trs"; then
		log="${trs%.trs}.log"
		echo
		echo "==================== ${log#./} ===================="
		cat "$log" 2>/dev/null || echo "(no $log)"
	fi
done

count() { # count FIELD: the number after the first "# FIELD:" (the summary) in test-suite.log
	awk -v f="# $1:" 'index($0, f) == 1 && !seen { n = $NF; seen = 1 } END { print n + 0 }' test-suite.log
}
pass=$(count PASS)
skip=$(count SKIP)
failed=$(($(count FAIL) + $(count ERROR) + $(count XPASS)))

if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
	echo "check: make check exited with $rc"
	failed=1
fi

echo
summary="$pass passed, $failed failed"
[ "$skip" -gt 0 ] && summary+=", $skip skipped"
echo "$summary"
[ "$failed" -eq 0 ]
