#!/usr/bin/env bash
# End to end with a real chat UI, not part of CI: Open WebUI → shim → a fake TGI upstream
# (tests/fake_hf.py), driven in headless Chromium. It sends one chat message, waits for the fake
# model's answer in the page, and saves a screenshot to tests/e2e/artifacts/open-webui.png.
#
#   SHIM_PYTHON=/path/to/venv/bin/python tests/e2e/open_webui.sh
#
# SHIM_PYTHON is a Python with shim installed (default: python3 of the active venv).
# The first run installs Open WebUI (several GB, with PyTorch) into tests/e2e/.venv-openwebui.
# OPEN_WEBUI_TORCH pins the torch that is installed first (e.g. a CPU build), and
# OPEN_WEBUI_VERSION pins Open WebUI. It needs Debian's chromium (installed with apt-get when
# missing and run as root). Everything listens on 127.0.0.1, and Open WebUI runs offline.
# Playwright drives the system Chromium: `playwright install` is never run.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="$HERE/.venv-openwebui"
RUN="$HERE/.run"
ARTIFACTS="$HERE/artifacts"
SHIM_PYTHON="${SHIM_PYTHON:-python3}"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
OPEN_WEBUI_VERSION="${OPEN_WEBUI_VERSION:-0.12.4}"
MODEL="fake-chat"
KEY="e2e-$(date +%s)-key"

log() { printf '[open_webui.sh] %s\n' "$*"; }
die() { log "error: $*"; exit 1; }

# wait_http URL SECONDS: polls until URL answers 2xx, at most SECONDS.
wait_http() {
    local url="$1" limit="$2" start=$SECONDS
    while (( SECONDS - start < limit )); do
        if "$SHIM_PYTHON" -c "import sys,urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" \
            "$url" 2>/dev/null; then
            return 0
        fi
        sleep 1
    done
    return 1
}

# --- prerequisites ---------------------------------------------------------------------------

"$SHIM_PYTHON" -c "import shim, uvicorn, httpx" 2>/dev/null \
    || die "SHIM_PYTHON=$SHIM_PYTHON cannot import shim (pip install -e '.[test]' first)"

if [ ! -x "$CHROMIUM" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "installing Debian's chromium"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
    fi
    [ -x "$CHROMIUM" ] || die "no Chromium at $CHROMIUM (apt-get install chromium)"
fi

if [ ! -x "$VENV/bin/open-webui" ]; then
    log "installing open-webui==$OPEN_WEBUI_VERSION into $VENV (this takes a while)"
    python3 -m venv "$VENV"
    if [ -n "${OPEN_WEBUI_TORCH:-}" ]; then
        "$VENV/bin/pip" install -q "$OPEN_WEBUI_TORCH"
    fi
    "$VENV/bin/pip" install -q "open-webui==$OPEN_WEBUI_VERSION" playwright
fi
"$VENV/bin/python" -c "import playwright" 2>/dev/null || "$VENV/bin/pip" install -q playwright

# --- start: fake upstream, shim, Open WebUI ---------------------------------------------------

rm -rf "$RUN"
mkdir -p "$RUN/data" "$ARTIFACTS"
read -r FAKE_PORT SHIM_PORT WEBUI_PORT < <("$SHIM_PYTHON" - <<'EOF'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))
for s in socks:
    s.close()
EOF
)

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -9 "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT

log "fake TGI upstream on 127.0.0.1:$FAKE_PORT"
(cd "$ROOT" && exec "$SHIM_PYTHON" -c "
import sys, uvicorn
from tests.fake_hf import FakeHF
uvicorn.run(FakeHF().asgi, host='127.0.0.1', port=int(sys.argv[1]), interface='asgi3',
            log_level='warning')
" "$FAKE_PORT") >"$RUN/fake.log" 2>&1 &
PIDS+=("$!")

cat >"$RUN/shim.toml" <<EOF
[server]
host = "127.0.0.1"
port = $SHIM_PORT
api_keys = ["$KEY"]

[models.$MODEL]
task = "text-generation"
url = "http://127.0.0.1:$FAKE_PORT/tgi"
protocol = "tgi"
chat_template = "chatml"
EOF
log "shim on 127.0.0.1:$SHIM_PORT"
"$SHIM_PYTHON" -m shim serve --config "$RUN/shim.toml" >"$RUN/shim.log" 2>&1 &
PIDS+=("$!")
wait_http "http://127.0.0.1:$SHIM_PORT/ready" 30 || { tail -20 "$RUN/shim.log"; die "shim did not start"; }

log "Open WebUI on 127.0.0.1:$WEBUI_PORT (first start runs its migrations: up to a few minutes)"
(
    cd "$RUN"
    export DATA_DIR="$RUN/data" \
        WEBUI_AUTH=False \
        WEBUI_SECRET_KEY="$KEY-secret" \
        ENABLE_OLLAMA_API=False \
        ENABLE_OPENAI_API=True \
        OPENAI_API_BASE_URL="http://127.0.0.1:$SHIM_PORT/v1" \
        OPENAI_API_KEY="$KEY" \
        DEFAULT_MODELS="$MODEL" \
        OFFLINE_MODE=True \
        HF_HUB_OFFLINE=1 \
        TRANSFORMERS_OFFLINE=1 \
        RAG_EMBEDDING_ENGINE=openai \
        RAG_OPENAI_API_BASE_URL="http://127.0.0.1:$SHIM_PORT/v1" \
        RAG_OPENAI_API_KEY="$KEY" \
        BYPASS_EMBEDDING_AND_RETRIEVAL=True \
        ENABLE_WEB_SEARCH=False \
        ENABLE_IMAGE_GENERATION=False \
        ENABLE_CODE_INTERPRETER=False \
        ENABLE_VERSION_UPDATE_CHECK=False \
        ANONYMIZED_TELEMETRY=False \
        DO_NOT_TRACK=True \
        SCARF_NO_ANALYTICS=True
    exec "$VENV/bin/open-webui" serve --host 127.0.0.1 --port "$WEBUI_PORT"
) >"$RUN/open-webui.log" 2>&1 &
PIDS+=("$!")
wait_http "http://127.0.0.1:$WEBUI_PORT/health" 600 \
    || { tail -40 "$RUN/open-webui.log"; die "Open WebUI did not start within 600 s"; }

# --- drive it ---------------------------------------------------------------------------------

log "driving Open WebUI in headless Chromium"
status=0
timeout 300 "$VENV/bin/python" "$HERE/drive_open_webui.py" \
    --url "http://127.0.0.1:$WEBUI_PORT" \
    --chromium "$CHROMIUM" \
    --model "$MODEL" \
    --expect "Hello from TGI!" \
    --screenshot "$ARTIFACTS/open-webui.png" || status=$?

log "shim saw:"
grep -E 'shim\.access' "$RUN/shim.log" | sed -E 's/^.*(method=[A-Z]+ path=[^ ]+).*( model=[^ ]+ status=[0-9]+).*$/  \1\2/' \
    | sort | uniq -c || true
if [ "$status" -ne 0 ]; then
    log "logs: $RUN/{fake,shim,open-webui}.log"
    die "the chat did not go through (exit $status)"
fi
log "ok: screenshot at $ARTIFACTS/open-webui.png"
