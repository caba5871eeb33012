#!/usr/bin/env bash
# sqlmap against the login and message routes of an API that is already running (this script starts nothing):
#   POST /auth/login                          JSON {"email","password"}   both injection points
#   POST /api/conversations/<id>/messages     JSON {"text"}               with the bearer token
#   GET  /api/conversations/<id>/messages?after=<message id>&limit=50     with the bearer token
# Each run's full output is kept in <output>/<target>.log. Exits 0 when sqlmap finds nothing injectable on every
# target, 1 when it finds something (or a run did not finish, or the server answered 500), 2 on bad usage or when
# sqlmap is missing (install it: scripts/services.sh --security-tools).
#
# Usage: scripts/sqlmap-check.sh --url BASE_URL --token ACCESS_TOKEN --conversation ID --after MESSAGE_ID
#                                --email EMAIL [--output DIR] [--header 'Name: value']...
set -uo pipefail

usage() { echo "usage: $0 --url BASE_URL --token ACCESS_TOKEN --conversation ID --after MESSAGE_ID --email EMAIL [--output DIR] [--header 'Name: value']..." >&2; exit 2; }

BASE_URL="" TOKEN="" CONVERSATION="" AFTER="" EMAIL="" OUTPUT=""
EXTRA_HEADERS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --url) BASE_URL="${2:-}"; shift 2 ;;
    --token) TOKEN="${2:-}"; shift 2 ;;
    --conversation) CONVERSATION="${2:-}"; shift 2 ;;
    --after) AFTER="${2:-}"; shift 2 ;;
    --email) EMAIL="${2:-}"; shift 2 ;;
    --output) OUTPUT="${2:-}"; shift 2 ;;
    --header) EXTRA_HEADERS+=("-H" "${2:-}"); shift 2 ;;
    *) usage ;;
  esac
done
[ -n "$BASE_URL" ] && [ -n "$TOKEN" ] && [ -n "$CONVERSATION" ] && [ -n "$AFTER" ] && [ -n "$EMAIL" ] || usage
# The values end up inside JSON bodies and URLs: only what ids, tokens and test addresses are made of.
for value in "$CONVERSATION" "$AFTER" "$TOKEN" "$EMAIL"; do
  [[ "$value" =~ ^[A-Za-z0-9._@+-]+$ ]] || { echo "sqlmap-check: unexpected characters in an argument" >&2; exit 2; }
done
command -v sqlmap >/dev/null || { echo "sqlmap-check: sqlmap is not installed (scripts/services.sh --security-tools)" >&2; exit 2; }
if [ -z "$OUTPUT" ]; then OUTPUT=$(mktemp -d "${TMPDIR:-/tmp}/botserver-sqlmap-XXXXXX"); fi
mkdir -p "$OUTPUT"

# Boolean, error, union, stacked and time-based techniques at level 2 / risk 1 against every marked point (no
# --smart: every payload is tried, not only where a heuristic fires); time-based payloads sleep --time-sec seconds.
COMMON=(--batch --level=2 --risk=1 --technique=BEUST --threads=4 --time-sec=2 --timeout=30 --retries=3
  --flush-session --disable-coloring --skip-waf --output-dir="$OUTPUT/sessions" -H "Accept: application/json" "${EXTRA_HEADERS[@]}")
AUTH=(-H "Authorization: Bearer $TOKEN")
MESSAGES_URL="$BASE_URL/api/conversations/$CONVERSATION/messages"

# sqlmap's verdicts: the one line it prints when nothing was found, and the lines of a finding (or of a DBMS error
# message leaking into a response, which its heuristic reports as "might be injectable").
NOTHING_FOUND='all tested parameters do not appear to be injectable'
FINDING="is vulnerable|identified the following injection point|appears to be '[^']+' injectable|might be injectable|might be vulnerable"

failed=0
run() {
  local name="$1"; shift
  local log="$OUTPUT/$name.log"
  echo "sqlmap-check: $name: running" >&2
  local started=$SECONDS
  TERM=dumb sqlmap "${COMMON[@]}" "$@" </dev/null >"$log" 2>&1
  local code=$?
  local took=$((SECONDS - started))
  if grep -Eq "$FINDING" "$log"; then
    echo "sqlmap-check: $name: INJECTABLE (${took}s, see $log)"; grep -E "$FINDING" "$log" | head -n 5; failed=1
    # What else sqlmap saw (timeouts, dropped connections, changing pages) tells a real finding from a flaky one.
    grep -E '\[(WARNING|CRITICAL|ERROR)\]' "$log" | sed -E 's/^\[[0-9:]+\] //' | sort | uniq -c | sort -rn | head -n 10
  elif grep -q '500 (Internal Server Error)' "$log"; then
    echo "sqlmap-check: $name: the server answered 500 (${took}s, see $log)"; failed=1
  elif ! grep -q "$NOTHING_FOUND" "$log"; then
    echo "sqlmap-check: $name: sqlmap did not finish its tests (exit $code, ${took}s, see $log)"; tail -n 5 "$log"; failed=1
  else
    echo "sqlmap-check: $name: $NOTHING_FOUND (${took}s)"
  fi
}

# A wrong password is the login's normal answer (401), so 401 is a page to compare, not an error.
run login -u "$BASE_URL/auth/login" --method POST -H "Content-Type: application/json" --ignore-code=401 \
  --data "{\"email\":\"$EMAIL*\",\"password\":\"wrong-password*\"}"
run message-send -u "$MESSAGES_URL" --method POST -H "Content-Type: application/json" "${AUTH[@]}" \
  --data '{"text":"hello*"}'
run message-list -u "$MESSAGES_URL?after=$AFTER*&limit=50*" "${AUTH[@]}"

if [ "$failed" -eq 0 ]; then echo "sqlmap-check: nothing injectable"; else echo "sqlmap-check: FAILED"; fi
exit "$failed"
