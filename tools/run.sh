#!/usr/bin/env bash
# Starts every Cobrador process; Ctrl-C (or any process dying) stops them all.
# Called by `make run` after set-up; see the README for the variables.
set -uo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
export RASA_TELEMETRY_ENABLED=false
endpoints="${ENDPOINTS:-endpoints.yml}"
model="${MODEL:-models/cobrador.tar.gz}"

pids=()
stop() {
  trap - INT TERM EXIT
  echo "stopping..." >&2
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  wait
}
trap stop INT TERM EXIT

"$bin/rasa" run actions --actions actions --port "${ACTION_PORT:-5055}" &
pids+=($!)
"$bin/rasa" run --model "$model" --endpoints "$endpoints" --credentials credentials.yml \
  --port "${RASA_PORT:-5005}" --cors "" &
pids+=($!)

echo "Cobrador is starting: Rasa on :${RASA_PORT:-5005}, actions on :${ACTION_PORT:-5055}. Ctrl-C stops everything." >&2
if [ -z "${TWILIO_AUTH_TOKEN:-}" ]; then
  echo "Local mode (no Twilio credentials): open http://127.0.0.1:${RASA_PORT:-5005}/webhooks/whatsapp/simulator" >&2
fi
wait -n
