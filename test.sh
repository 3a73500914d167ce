#!/usr/bin/env bash
# The whole test suite: installs the Debian packages the tests need when they
# are missing (PostgreSQL, for the production-shape test in internal/prodshape;
# chromium, for the Web UI browser test in worker/; Samba AD DC and OpenLDAP,
# for the directory tests through internal/ldappeer; prometheus, for promtool),
# then runs go test ./... (arguments are passed on, e.g. ./test.sh -short).
# The npm test peers install themselves on first use.
set -euo pipefail
cd "$(dirname "$0")"

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing Debian's postgresql (production-shape test)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    echo "installing Debian's postgresql (production-shape test)"
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "PostgreSQL is not installed and cannot be installed here: the production-shape test will be skipped (apt-get install -y postgresql)" >&2
  fi
fi

# Debian's chromium: the real-browser test of the operator's path in the
# Web UI (worker/ui_browser_test.go).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing Debian's chromium (Web UI browser test)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    echo "installing Debian's chromium (Web UI browser test)"
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "chromium is not installed and cannot be installed here: the Web UI browser test will be skipped (apt-get install -y chromium)" >&2
  fi
fi

# Debian's directory servers: Samba AD DC and OpenLDAP, the real peers of
# the LDAP connector's tests (internal/ldappeer starts them).
if ! { [ -x /usr/sbin/samba ] && [ -x /usr/sbin/slapd ] && [ -x /usr/bin/ldapsearch ] && { [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || [ -x /bin/ip ]; }; }; then
  pkgs="samba-ad-dc slapd ldap-utils iproute2"
  if [ "$(id -u)" = 0 ]; then
    echo "installing Debian's $pkgs (directory tests)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    echo "installing Debian's $pkgs (directory tests)"
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null
  else
    echo "Samba AD DC and OpenLDAP are not installed and cannot be installed here: the directory tests will be skipped (apt-get install -y $pkgs)" >&2
  fi
fi

# Debian's prometheus, for promtool: the alert rules' unit test
# (internal/deploy, deploy/prometheus).
if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "installing Debian's prometheus (promtool, alert rules test)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    echo "installing Debian's prometheus (promtool, alert rules test)"
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
  else
    echo "promtool is not installed and cannot be installed here: the alert rules test will be skipped (apt-get install -y prometheus)" >&2
  fi
fi

exec go test "$@" ./...
