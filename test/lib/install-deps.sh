#!/bin/bash
# Installs the Debian packages the demo and the test suite need, when missing:
# ejabberd (and Erlang headers + rebar3 for the in-VM module), slixmpp for
# Debian's python3, Prosody (+ prosody-modules, lua-cyrussasl for its Cyrus
# SASL path), testsaslauthd (sasl2-bin), postmap (postfix),
# systemd-socket-activate, curl, logrotate, openssl; for the packages' test
# (test/e2e/packages.sh): mmdebstrap (a clean Debian root), systemd-nspawn
# (booting it), dpkg-dev (dpkg-shlibdeps, for packaging/build-debs.sh).
# As root it runs apt-get; otherwise it says what to install and fails.
set -u
need=()
command -v erl >/dev/null 2>&1 || need+=(erlang-base)
[ -x /usr/sbin/ejabberdctl ] || need+=(ejabberd)
[ -f /usr/lib/erlang/usr/include/erl_nif.h ] || need+=(erlang-dev)
command -v rebar3 >/dev/null 2>&1 || need+=(rebar3)
/usr/bin/python3 -c 'import slixmpp' >/dev/null 2>&1 || need+=(python3-slixmpp)
command -v prosody >/dev/null 2>&1 || need+=(prosody)
# Prosody -> Cyrus SASL -> saslauthd socket path (mod_auth_cyrus)
[ -d /usr/lib/prosody/modules/mod_auth_cyrus ] || need+=(prosody-modules)
dpkg -s lua-cyrussasl >/dev/null 2>&1 || need+=(lua-cyrussasl)
[ -x /usr/sbin/testsaslauthd ] || need+=(sasl2-bin)
[ -x /usr/sbin/postmap ] || need+=(postfix)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v logrotate >/dev/null 2>&1 || need+=(logrotate)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
[ -x /usr/bin/systemd-socket-activate ] || need+=(systemd)
command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
command -v systemd-nspawn >/dev/null 2>&1 || need+=(systemd-container)
command -v dpkg-shlibdeps >/dev/null 2>&1 || need+=(dpkg-dev)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages: ${need[*]} (run as root, or: sudo apt-get install ${need[*]})" >&2
    exit 1
fi
echo "installing: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
# The packages' postinst scripts may try to start system services (ejabberd,
# prosody, saslauthd, postfix); the tests start their own, so keep them down.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi
# postfix asks how mail is to be delivered; the tests only use postmap.
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
apt-get update -qq >/dev/null && apt-get install -y -qq "${need[@]}" >/dev/null || {
    echo "apt-get install ${need[*]} failed" >&2
    exit 1
}
# System services the packages may have started are not needed by the tests.
if command -v systemctl >/dev/null 2>&1; then
    for s in ejabberd prosody saslauthd postfix; do systemctl stop "$s" >/dev/null 2>&1 || true; done
fi
exit 0
