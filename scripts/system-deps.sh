#!/usr/bin/env bash
# Installs what the sandbox and the tests need from the system when it is missing: OpenSSH's
# server (the sandbox's hosts), PostgreSQL's server programs (the tests' own database for
# Dagster's storage) and chromium (the UI tests' browser). As root it uses apt-get; otherwise
# it says what to install and goes on (the tests that need them then say so).
set -euo pipefail
missing=()
if [[ ! -x /usr/sbin/sshd || ! -x /usr/bin/ssh-keygen ]]; then
  missing+=(openssh-server openssh-client)
fi
if ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && ! command -v initdb >/dev/null; then
  missing+=(postgresql)
fi
# Debian's chromium, driven headless by the UI's browser tests (tests/e2e/test_ui_browser.py).
if [[ ! -x /usr/bin/chromium ]]; then
  missing+=(chromium)
fi
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
  echo "installing ${missing[*]} (needed by the sandbox and the tests)..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  packages=()
  for p in "${missing[@]}"; do
    if [[ $p == postgresql ]]; then
      # PostgreSQL 15 where the distribution has it (the version the tests are run with), and
      # no cluster of the package's own: the tests start theirs in a temporary folder.
      if apt-cache show postgresql-15 >/dev/null 2>&1; then p=postgresql-15; fi
      mkdir -p /etc/postgresql-common/createcluster.d
      echo 'create_main_cluster = false' >/etc/postgresql-common/createcluster.d/bm-upgrade.conf
    fi
    packages+=("$p")
  done
  apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
else
  echo "warning: missing ${missing[*]}; install them (e.g. sudo apt-get install ${missing[*]})" >&2
fi
