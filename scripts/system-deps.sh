#!/usr/bin/env bash
# Installs what the sandbox needs from the system (OpenSSH's server) when it is missing.
# As root it uses apt-get; otherwise it says what to install and goes on (the tests that need
# sshd then say so).
set -euo pipefail
if [[ -x /usr/sbin/sshd && -x /usr/bin/ssh-keygen ]]; then
  exit 0
fi
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
  echo "installing openssh-server (needed by the sandbox)..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends openssh-server openssh-client >/dev/null
else
  echo "warning: /usr/sbin/sshd is missing; install openssh-server (e.g. sudo apt-get install openssh-server)" >&2
fi
