#!/usr/bin/env bash
# npm start: make sure Redis and PostgreSQL answer, then migrations, bootstrap admin, API and every worker.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
exec node --import tsx scripts/cli.ts start
