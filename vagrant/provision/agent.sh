#!/usr/bin/env bash
# Every node: the agent as a systemd service. Args: NODE_NAME NODE_ADDRESS CONTROL_ADDR
set -euo pipefail
node_name=$1 node_address=$2 control=$3
# This node's own bootstrap token (the Vagrantfile's file provisioner put it in vagrant's
# home; it is not in the synced folder). Kept root-only in /etc/weft.
if [ -e /home/vagrant/.weft-token ]; then
  install -m 0600 /home/vagrant/.weft-token /etc/weft/token
  rm -f /home/vagrant/.weft-token
fi
[ -s /etc/weft/token ] || { echo "no bootstrap token for $node_name" >&2; exit 1; }
cat > /etc/default/weft-agent <<EOT
WEFT_CONTROL=$control
WEFT_NODE=$node_name
WEFT_NODE_ADDRESS=$node_address
EOT
# The mesh CA bundle the control API's TLS certificate chains to: on node-1 the control
# API's own file (written just before it listens), elsewhere the copy the Vagrantfile's
# trigger fetched from node-1.
ca=/var/lib/weft-control/ca-bundle.pem
[ -e /etc/systemd/system/weft-control.service ] || ca=/vagrant/vagrant/.weft-ca-bundle.pem
for _ in $(seq 50); do [ -s "$ca" ] && break; sleep 0.2; done
[ -s "$ca" ] || { echo "no CA bundle at $ca (is node-1 up?)" >&2; exit 1; }
install -m 0644 "$ca" /etc/weft/ca-bundle.pem
install -m 0644 /opt/weft/deploy/systemd/weft-agent.service /etc/systemd/system/
systemctl daemon-reload
systemctl enable weft-agent
# restart, not start: re-provisioning after a rebuild must run the new code. The agent
# adopts its pinned datapath, so this is also the upgrade path.
systemctl restart weft-agent
