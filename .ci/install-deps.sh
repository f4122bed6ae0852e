#!/usr/bin/env bash
# Installs the system packages xjingle's integration tests need on a Debian or
# Ubuntu machine, idempotently:
#   prosody      the throwaway XMPP server of internal/testbed (0.12 in bookworm)
#   lua-unbound  Prosody's DNS resolver library (avoids its fallback warning)
#   coturn       turnutils_uclient, for TURN relay benchmarks
# The packages' own system services are stopped and disabled: Debian's
# prosody listens on 5222/5269 (and coturn on 3478) on every interface, and the
# tests start their own servers on loopback.
#
# Usage: bash .ci/install-deps.sh        (or source it and call install_deps)

XJ_APT_PACKAGES=(prosody lua-unbound coturn)
XJ_SERVICES=(prosody coturn)

# xj_sudo runs its arguments as root (directly when we already are).
xj_sudo() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# xj_installed reports whether Debian package $1 is installed.
xj_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# xj_stop_services stops and disables the system services of the packages
# above, if they run. It only addresses those services by name through the
# init system; it never kills processes itself.
xj_stop_services() {
	local svc
	for svc in "${XJ_SERVICES[@]}"; do
		xj_installed "$svc" || continue
		if [ -d /run/systemd/system ]; then
			xj_sudo systemctl disable --now "$svc" >/dev/null 2>&1 || true
		elif [ -x "/etc/init.d/$svc" ]; then
			xj_sudo service "$svc" stop >/dev/null 2>&1 || true
			xj_sudo update-rc.d "$svc" disable >/dev/null 2>&1 || true
		fi
	done
}

# install_deps installs whatever of XJ_APT_PACKAGES is missing (one apt-get
# update, only when something is missing), keeping the packages' services
# from starting, then makes sure none of them runs.
install_deps() {
	local p missing=()
	for p in "${XJ_APT_PACKAGES[@]}"; do
		xj_installed "$p" || missing+=("$p")
	done
	if [ "${#missing[@]}" -gt 0 ]; then
		echo "install-deps: installing ${missing[*]}"
		# policy-rc.d exit code 101 tells invoke-rc.d not to start services
		# from the packages' postinst scripts. Keep an existing policy.
		local policy=/usr/sbin/policy-rc.d made_policy=""
		if [ ! -e "$policy" ]; then
			printf '#!/bin/sh\nexit 101\n' | xj_sudo tee "$policy" >/dev/null
			xj_sudo chmod 755 "$policy"
			made_policy=1
		fi
		local rc=0
		xj_sudo apt-get update -q || rc=$?
		if [ "$rc" -eq 0 ]; then
			xj_sudo env DEBIAN_FRONTEND=noninteractive \
				apt-get install -y -q --no-install-recommends "${missing[@]}" || rc=$?
		fi
		if [ -n "$made_policy" ]; then xj_sudo rm -f "$policy"; fi
		if [ "$rc" -ne 0 ]; then
			echo "install-deps: apt-get failed ($rc)" >&2
			return "$rc"
		fi
	else
		echo "install-deps: ${XJ_APT_PACKAGES[*]} already installed"
	fi
	xj_stop_services
	if command -v prosodyctl >/dev/null; then
		prosodyctl about 2>/dev/null | head -n 1 || true
	fi
}

# Run when executed, not when sourced.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -euo pipefail
	install_deps
fi
