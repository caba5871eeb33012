#!/usr/bin/env bash
# The whole suite: starts the services it needs, then mocha; the last line is "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh --browser --mail --security-tools --s3 || { echo "0 passed, 1 failed"; exit 1; }
export NODE_ENV=test
export BOTSERVER_TEST_S3_ENDPOINT="${BOTSERVER_TEST_S3_ENDPOINT:-http://127.0.0.1:${BOTSERVER_TEST_S3_PORT:-9010}}"
export BOTSERVER_DATA_DIR="${BOTSERVER_DATA_DIR:-$PWD/.test-run/data}"
export LOG_LEVEL="${LOG_LEVEL:-warn}"
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
npx --no-install mocha --reporter ./test/helpers/summary-reporter.cjs "$@"
