#!/usr/bin/env bash
# Every node: the agent as a systemd service. Args: NODE_NAME NODE_ADDRESS CONTROL_ADDR
set -euo pipefail
node_name=$1 node_address=$2 control=$3
cat > /etc/default/weft-agent <<EOT
WEFT_CONTROL=$control
WEFT_NODE=$node_name
WEFT_NODE_ADDRESS=$node_address
EOT
install -m 0644 /opt/weft/deploy/systemd/weft-agent.service /etc/systemd/system/
systemctl daemon-reload
systemctl enable weft-agent
# restart, not start: re-provisioning after a rebuild must run the new code. The agent
# adopts its pinned datapath, so this is also the upgrade path.
systemctl restart weft-agent
