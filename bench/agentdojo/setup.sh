#!/usr/bin/env bash
# AgentDojo in its own venv (bench/agentdojo/.venv): its pins (openai, anthropic, pydantic ...) differ from
# the project's, so it never enters requirements.lock. Idempotent: a venv whose stamp matches the lock is kept.
# Re-pin: make a fresh venv, `pip install agentdojo==<version>`, `pip freeze | grep -v '^pip==' > requirements.lock`.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="$HERE/.venv"
LOCK="$HERE/requirements.lock"
STAMP="$VENV/.installed"
PY="${PY:-python3}"
if [ -f "$STAMP" ] && cmp -s "$LOCK" "$STAMP"; then
  exit 0
fi
test -x "$VENV/bin/python" || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q -r "$LOCK"
"$VENV/bin/python" -c "import agentdojo.task_suite.load_suites as s; s.get_suite('v1.2.2', 'banking')"
cp "$LOCK" "$STAMP"
