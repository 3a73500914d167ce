#!/usr/bin/env bash
# The whole test suite: installs the Debian packages the tests need when they
# are missing, then runs go test ./... (arguments are passed on, e.g.
# ./test.sh -short). The npm test peers install themselves on first use.
set -euo pipefail
cd "$(dirname "$0")"

missing=()
# need PACKAGES... -- CHECK: CHECK (a shell test) fails when PACKAGES are missing.
need() {
  local pkgs=()
  while [ "$1" != -- ]; do pkgs+=("$1"); shift; done
  shift
  eval "$*" >/dev/null 2>&1 || missing+=("${pkgs[@]}")
}
# PostgreSQL: the production-shape test (internal/prodshape).
need postgresql -- 'ls /usr/lib/postgresql/*/bin/initdb'
# chromium: the real-browser test of the operator's path in the Web UI (worker/).
need chromium -- 'command -v chromium'
# Samba AD DC and OpenLDAP: the LDAP connector's real peers (internal/ldappeer).
need samba-ad-dc slapd ldap-utils iproute2 -- '[ -x /usr/sbin/samba ] && [ -x /usr/sbin/slapd ] && command -v ldapsearch && command -v ip'
# prometheus, for promtool: the alert rules' unit test (internal/deploy).
need prometheus -- 'command -v promtool'

if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo -n"
  if [ -z "$sudo" ] || { command -v sudo >/dev/null && sudo -n true 2>/dev/null; }; then
    echo "installing Debian's ${missing[*]}"
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "cannot install Debian's ${missing[*]} here: the tests that need them will be skipped (apt-get install -y ${missing[*]})" >&2
  fi
fi

# The end-to-end package runs for about 10 minutes on 2 busy cores: past go
# test's default 10-minute limit per package (a later -timeout wins).
exec go test -timeout 30m "$@" ./...
