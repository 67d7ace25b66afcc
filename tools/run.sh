#!/usr/bin/env bash
# Starts every Cobrador process; Ctrl-C (or any process dying) stops them all.
# Called by `make run` after set-up; see the README for the variables.
set -uo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
export RASA_TELEMETRY_ENABLED=false
endpoints="${ENDPOINTS:-endpoints.yml}"
model="${MODEL:-models/cobrador.tar.gz}"

# Twilio (or the simulator) posts to the ingest; signatures are checked
# against this public URL. In production set it to the public HTTPS address
# that routes /webhooks/whatsapp/* to the ingest.
export COBRADOR_PUBLIC_URL="${COBRADOR_PUBLIC_URL:-http://127.0.0.1:${INGEST_PORT:-5004}}"
export COBRADOR_RASA_URL="${COBRADOR_RASA_URL:-http://127.0.0.1:${RASA_PORT:-5005}}"
# Rasa's HTTP API is on, and only with a JWT signed by this secret (the
# console uses it); generated once per machine when not given.
if [ -z "${RASA_JWT_SECRET:-}" ]; then
  mkdir -p var
  [ -s var/rasa_jwt_secret ] || (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > var/rasa_jwt_secret)
  RASA_JWT_SECRET="$(cat var/rasa_jwt_secret)"
fi
export RASA_JWT_SECRET

pids=()
stop() {
  trap - INT TERM EXIT
  echo "stopping..." >&2
  # Last started, first stopped, each in turn: the ingest goes before Rasa and
  # the actions, so the turns under way end (it waits up to
  # COBRADOR_DRAIN_SECONDS, 8, for them) while those still answer.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill -TERM "${pids[i]}" 2>/dev/null
    wait "${pids[i]}" 2>/dev/null
  done
}
trap stop INT TERM EXIT

"$bin/rasa" run actions --actions actions --port "${ACTION_PORT:-5055}" &
pids+=($!)
"$bin/rasa" run --model "$model" --endpoints "$endpoints" --credentials credentials.yml \
  --port "${RASA_PORT:-5005}" --cors "" --enable-api --jwt-secret "$RASA_JWT_SECRET" --jwt-method HS256 &
pids+=($!)
"$bin/python" -m cobrador ingest --port "${INGEST_PORT:-5004}" --rasa-url "$COBRADOR_RASA_URL" --model "$model" &
pids+=($!)
# The agent console (docs/console.md): log in with a demo agent from the README.
"$bin/python" -m cobrador web --port "${CONSOLE_PORT:-8000}" &
pids+=($!)
# Business-initiated messages under the contact rules (docs/outreach.md);
# COBRADOR_OUTREACH=off leaves them out (e.g. a second machine).
if [ "${COBRADOR_OUTREACH:-on}" != "off" ]; then
  "$bin/python" -m cobrador outreach &
  pids+=($!)
fi

echo "Cobrador is starting: WhatsApp webhooks on :${INGEST_PORT:-5004} (${COBRADOR_PUBLIC_URL}/webhooks/whatsapp/webhook), Rasa on :${RASA_PORT:-5005}, actions on :${ACTION_PORT:-5055}. Ctrl-C stops everything." >&2
if [ -z "${TWILIO_AUTH_TOKEN:-}" ]; then
  echo "Local mode (no Twilio credentials): open http://127.0.0.1:${RASA_PORT:-5005}/webhooks/whatsapp/simulator" >&2
  echo "Agent console: http://127.0.0.1:${CONSOLE_PORT:-8000} (agente@demo.cobrador.mx / demo-agente-2026)" >&2
fi
wait -n
