#!/usr/bin/env bash
# The main job on a fresh machine: install rbee-infra and the pinned Pulumi CLI (Pulumi's
# installer, else a build from its Go modules), make this machine reachable over SSH with a key
# (its host key read from disk, not from the network), then preview and apply the `localhost`
# stack with the real `pulumi` on a local file backend, and show what is installed.
# RBEE_INFRA_PROJECT_DIR points it at another copy of the project (the tests use one).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install -q --disable-pip-version-check -c constraints.txt -e .
# byte-compiled, as a wheel's install is: where PYTHONDONTWRITEBYTECODE is set, every program and
# provider process would otherwise compile rbee-infra's modules again (0.1 s of CPU each)
python3 -m compileall -q rbee_infra >/dev/null
[ -d /usr/local/go/bin ] && PATH="$PATH:/usr/local/go/bin"
PATH="$(bash scripts/install-pulumi.sh):$PATH"
export PATH

if ! (exec 3<>/dev/tcp/127.0.0.1/22) 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null
        mkdir -p /run/sshd && /usr/sbin/sshd
    else
        echo "no SSH server on 127.0.0.1:22: install and start openssh-server, then rerun" >&2
        exit 1
    fi
fi

key="$HOME/.ssh/id_ed25519"
mkdir -p "$HOME/.ssh" && chmod 700 "$HOME/.ssh"
[ -f "$key" ] || ssh-keygen -q -t ed25519 -N '' -f "$key"
touch "$HOME/.ssh/authorized_keys" && chmod 600 "$HOME/.ssh/authorized_keys"
grep -qxF "$(cat "$key.pub")" "$HOME/.ssh/authorized_keys" || cat "$key.pub" >> "$HOME/.ssh/authorized_keys"
hostkey=/etc/ssh/ssh_host_ed25519_key.pub
if [ -r "$hostkey" ] && ! grep -q "^127.0.0.1 $(cut -d' ' -f1,2 "$hostkey")" "$HOME/.ssh/known_hosts" 2>/dev/null; then
    echo "127.0.0.1 $(cut -d' ' -f1,2 "$hostkey")" >> "$HOME/.ssh/known_hosts"
fi

# The localhost stack holds no secret (the key is read from its file), so unless one is set,
# it chooses an empty passphrase on purpose (rbee-infra refuses to assume one).
if [ -z "${PULUMI_CONFIG_PASSPHRASE+set}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE+set}" ]; then
    export PULUMI_CONFIG_PASSPHRASE=""
fi

# The preview already lists what this machine lacks for a build (preflight: the toolchain, and
# for rbee's hive Node.js, pnpm, wasm-pack and the wasm32 target); the stack sets
# ensureToolchain, so `up` installs in this user's home what it can, refuses at once (before
# compiling anything) what it cannot, and installs everything else.
python3 -m rbee_infra.cli preview --stack localhost
status=0
python3 -m rbee_infra.cli up --stack localhost --yes || status=$?
python3 -m rbee_infra.cli status --stack localhost || true
if [ "$status" != 0 ]; then
    echo "the main job installed what it could; what it could not is named above (preflight" \
        "failed: what is missing, how to install it, or the stack lines that install a" \
        "prebuilt binary instead)" >&2
fi
exit "$status"
