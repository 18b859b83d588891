#!/usr/bin/env bash
# One sample campaign against the local stack (`docker compose up`): loads 595 Alloy installs
# into the sandbox, then enqueues an upgrade of 600 users through the HTTP API. Expect about
# 575 upgraded and 25 failed (REINSTALL_REQUIRED, FORBIDDEN, NOT_FOUND), at 25 targets/s.
#
#   export UPSHIFT_API_TOKEN=$(openssl rand -hex 32) REDIS_PASSWORD=$(openssl rand -hex 32)
#   docker compose up --build -d
#   examples/sample-campaign.sh
#
# Environment:
#   UPSHIFT_API_TOKEN  required: the API's bearer token, as the api service has it (no default)
#   API_URL            the API                      (default http://localhost:3000)
#   SANDBOX_URL        the sandbox                  (default http://localhost:4010)
#   CAMPAIGN_ID        a campaign id other than the spec's, to run the sample again as a new campaign
#   SPEC_BASE_URL      where the *workers* reach the sandbox (default the spec's http://sandbox:4010;
#                      e.g. http://127.0.0.1:4010 when the workers run on the host, not in compose)
#   WAIT_S             how long to wait for the stack to answer (default 90)
set -euo pipefail

API_URL=${API_URL:-http://localhost:3000}
SANDBOX_URL=${SANDBOX_URL:-http://localhost:4010}
WAIT_S=${WAIT_S:-90}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() {
  echo "sample-campaign: $*" >&2
  exit 1
}

# No default, like docker-compose.yml: the token is the key to the workers' platform credentials.
[[ -n ${UPSHIFT_API_TOKEN:-} ]] ||
  die "UPSHIFT_API_TOKEN is not set; export it as the api service has it (docker compose up needs it too)"

command -v curl >/dev/null || die "curl is missing; install it (Debian/Ubuntu: apt-get install curl)"

# `docker compose up -d` returns before the services answer: wait for each, bounded.
wait_for() {
  local url=$1 what=$2 deadline=$((SECONDS + WAIT_S))
  until curl -fsS -o /dev/null "$url" 2>/dev/null; do
    ((SECONDS < deadline)) || die "$what does not answer at $url after ${WAIT_S}s; is the stack up? (docker compose ps; docker compose logs $what)"
    sleep 1
  done
}
wait_for "$API_URL/healthz" api
wait_for "$SANDBOX_URL/__sandbox/stats" sandbox

echo "loading fixtures into the sandbox ($SANDBOX_URL)"
curl -fsS -X POST "$SANDBOX_URL/__sandbox/fixtures" \
  -H 'content-type: application/json' \
  --data-binary @"$here/sample-fixtures.json" >/dev/null ||
  die "the sandbox refused the fixtures (see the message above)"

# The NDJSON body: the spec on the first line (newlines dropped; the spec has none inside its
# strings), then one target a line.
body=$(mktemp)
answer=$(mktemp)
trap 'rm -f "$body" "$answer"' EXIT
tr -d '\n' <"$here/sample-spec.json" >"$body"
if [[ -n ${CAMPAIGN_ID:-} ]]; then
  [[ $CAMPAIGN_ID =~ ^[A-Za-z0-9_-]{1,64}$ ]] || die "CAMPAIGN_ID must match ^[A-Za-z0-9_-]{1,64}\$"
  sed -i.bak -E "s/\"id\": *\"[^\"]*\"/\"id\": \"$CAMPAIGN_ID\"/" "$body" && rm -f "$body.bak"
fi
if [[ -n ${SPEC_BASE_URL:-} ]]; then
  [[ $SPEC_BASE_URL =~ ^https?://[A-Za-z0-9._:-]+(/[A-Za-z0-9._/-]*)?$ ]] || die "SPEC_BASE_URL must be an http(s) URL"
  sed -i.bak -E "s#\"baseUrl\": *\"[^\"]*\"#\"baseUrl\": \"$SPEC_BASE_URL\"#" "$body" && rm -f "$body.bak"
fi
id=$(sed -E 's/^.*"id": *"([^"]*)".*$/\1/' "$body")
printf '\n' >>"$body"
cat "$here/sample-targets.ndjson" >>"$body"

echo "enqueuing campaign $id through the API ($API_URL)"
status=$(curl -sS -o "$answer" -w '%{http_code}' -X POST "$API_URL/campaigns" \
  -H "Authorization: Bearer $UPSHIFT_API_TOKEN" \
  -H 'content-type: application/x-ndjson' \
  --data-binary @"$body")
case $status in
  2??) ;;
  401 | 403) die "the API refused the token (HTTP $status); export UPSHIFT_API_TOKEN as the api service has it" ;;
  *) die "the API answered HTTP $status: $(cat "$answer")" ;;
esac
echo "API: HTTP $status $(cat "$answer")"

cat <<EOF

Campaign $id is running. Watch it:
  dashboard   http://localhost:3000
  terminal    docker compose exec api node dist/src/cli/main.js status $id --watch
  API         curl -H "Authorization: Bearer \$UPSHIFT_API_TOKEN" $API_URL/campaigns/$id
  failures    curl -H "Authorization: Bearer \$UPSHIFT_API_TOKEN" "$API_URL/campaigns/$id/report?outcome=failed"
Run the sample again as a new campaign: CAMPAIGN_ID=sample-2 $0
EOF
