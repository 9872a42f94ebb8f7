#!/usr/bin/env bash
# node-1: the control API as a systemd service, serving the repository's example policies
# without their static Workloads (on these VMs workloads register with `weft run`).
set -euo pipefail
# One 'NODE TOKEN' line per VM (made by the Vagrantfile, delivered by a file provisioner).
if [ -e /home/vagrant/.weft-control-tokens ]; then
  install -m 0600 /home/vagrant/.weft-control-tokens /etc/weft/control-tokens
  rm -f /home/vagrant/.weft-control-tokens
fi
install -d -m 0755 /etc/weft/policies
find /etc/weft/policies -mindepth 1 -delete
for f in /opt/weft/policies/shop/*.yaml; do
  [ "$(basename "$f")" = workloads.yaml ] || install -m 0644 "$f" /etc/weft/policies/
done
weft validate /etc/weft/policies/*.yaml
install -m 0644 /opt/weft/deploy/systemd/weft-control.service /etc/systemd/system/
systemctl daemon-reload
systemctl enable weft-control
systemctl restart weft-control
