#!/bin/bash
# Installs the Debian packages the demo and the end-to-end tests need
# (ejabberd, slixmpp for Debian's python3, Erlang headers), when missing.
# As root it runs apt-get; otherwise it says what to install and fails.
set -u
need=()
command -v erl >/dev/null 2>&1 || need+=(erlang-base)
[ -x /usr/sbin/ejabberdctl ] || need+=(ejabberd)
/usr/bin/python3 -c 'import slixmpp' >/dev/null 2>&1 || need+=(python3-slixmpp)
command -v curl >/dev/null 2>&1 || need+=(curl)
[ -x /usr/bin/systemd-socket-activate ] || need+=(systemd)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages: ${need[*]} (run as root, or: sudo apt-get install ${need[*]})" >&2
    exit 1
fi
echo "installing: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
# The package's postinst may try to start the system service; keep it down.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
apt-get update -qq >/dev/null && apt-get install -y -qq "${need[@]}" >/dev/null || {
    echo "apt-get install ${need[*]} failed" >&2
    exit 1
}
# A system ejabberd started by the package is not needed by the tests.
if command -v systemctl >/dev/null 2>&1; then systemctl stop ejabberd >/dev/null 2>&1 || true; fi
exit 0
