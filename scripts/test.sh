#!/usr/bin/env bash
# The project's test command (README "Quick start"): bootstraps Node >= 22.22 and the npm dependencies if
# missing, starts the local Kafka broker if none answers (leaving it running for the next run), checks
# PostgreSQL, then type-checks and runs every test (`npm test`). Extra arguments go to vitest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=node-env.sh
. scripts/node-env.sh
if [ ! -d node_modules/@platformatic/kafka ]; then npm ci --no-fund --no-audit; fi
bash scripts/kafka.sh status 2>/dev/null || bash scripts/kafka.sh start
if ! pg_isready -h "${PGHOST:-127.0.0.1}" -p "${PGPORT:-5432}" -q 2>/dev/null; then
  echo "test.sh: PostgreSQL does not answer on ${PGHOST:-127.0.0.1}:${PGPORT:-5432}; start it (see README, Prerequisites)" >&2
  exit 1
fi
exec npm test -- "$@"
