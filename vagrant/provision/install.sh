#!/usr/bin/env bash
# Every node: Debian packages, Node 20, weft built from the synced repository into
# /opt/weft, and the shared bootstrap token. Idempotent: `vagrant provision` re-runs it
# after `vagrant rsync` to rebuild from edited sources.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# The same package list CI and the demo use, from the repository itself.
bash /vagrant/scripts/install-deps.sh

# Node 20: bookworm ships Node 18, weft needs >= 20 (package.json engines). NodeSource's
# apt repository, added by hand with its signing key (rather than piping their setup
# script into bash). Needs internet access from the VM.
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null; then
  apt-get install -y -qq --no-install-recommends ca-certificates curl gnupg >/dev/null
  install -d -m 0755 /etc/apt/keyrings
  curl -fsSL https://deb.nodesource.com/gpgkey/nodesource-repo.gpg.key | gpg --dearmor --yes -o /etc/apt/keyrings/nodesource.gpg
  echo "deb [signed-by=/etc/apt/keyrings/nodesource.gpg] https://deb.nodesource.com/node_20.x nodistro main" \
    > /etc/apt/sources.list.d/nodesource.list
  apt-get update -qq
  apt-get install -y -qq nodejs >/dev/null
fi
echo "node $(node --version), npm $(npm --version)"

# Build in /opt/weft, not in /vagrant: the synced folder is the host's checkout and must
# not receive Linux build outputs.
install -d /opt/weft
tar -C /vagrant --exclude=./node_modules --exclude=./dist --exclude=./.git \
    --exclude=./native/build --exclude=./bpf/.output -cf - . | tar -C /opt/weft -xf -
cd /opt/weft
npm ci --no-audit --no-fund
npm run build
ln -sf /opt/weft/bin/weft /usr/local/bin/weft
weft --version
install -d -m 0700 /etc/weft
