#!/bin/bash
# End to end, from the Debian packages, for one Debian release:
# CLOUDAUTH_PACKAGES_SUITE=bookworm (Debian 12, the default) or trixie
# (Debian 13: test/e2e/packages_trixie.sh). A clean root of that release is
# made by mmdebstrap (cached in test/.work/roots/ under the hash of its
# recipe, for a week); packaging/build-debs.sh builds the packages for it (on
# this machine for its own release, else with DEB_ROOT set to a copy of the
# root: the beams compiled by the release's erlc; CLOUDAUTH_DEB_DIR=DIR reuses
# packages built before), apt installs cloudauth, cloudauth-ejabberd and
# cloudauth-prosody into the root, and everything below uses the installed
# files only:
#  - in the root (chroot): versions, man pages, unit files (systemd-analyze
#    verify), the xcauth user and its directories, logrotate, the AppArmor
#    rules parsed within ejabberd's profile, the module's ext_mod symlink;
#  - ejabberd run in the root as the ejabberd user, with its contributed
#    modules in ~ejabberd/.ejabberd-modules: auth_method: cloud (the installed
#    module and NIF), then auth_method: external (/usr/bin/cloudauth with
#    /etc/xcauth.conf); slixmpp on the host logs in by password and by JSXC
#    token (minted by the installed cloudauth) against the test backend on
#    the host;
#  - the root booted with systemd-nspawn: cloudauth.service, hardened as
#    packaged, socket-activated on the packaged unix sockets (mode 0660,
#    group xcauth), answers ejabberd's protocol and logs to
#    /var/log/xcauth; Prosody in the booted root (its user in the group
#    xcauth), with the installed mod_auth_cloudauth, logs in through the
#    service's prosody socket at its default path;
#    logrotate rotates the log and the service reopens it;
#  - apt purge removes what the packages added and keeps xcauth's data.
# Needs root (chroot, mount), mmdebstrap, systemd-nspawn (systemd-container).
set -u
. "$(dirname "$0")/../lib/common.sh"
. "$E2E_LIB/debian-root.sh"

PHASE_T=$(date +%s)
T0=$PHASE_T
timing() { # timing WHAT: seconds since the last call
    local now
    now=$(date +%s)
    echo "# timing: $1: $(( now - PHASE_T )) s"
    PHASE_T=$now
}

[ "$(id -u)" = 0 ] || die_setup "needs root (chroot, mount, mmdebstrap)"
for tool in mmdebstrap systemd-nspawn nsenter; do
    command -v "$tool" >/dev/null || die_setup "$tool not found (test/lib/install-deps.sh installs it)"
done
W=$(workdir packages)
VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version *= *"\(.*\)"/\1/p' "$ROOT/Cargo.toml")
ARCH=$(dpkg --print-architecture)

# --- a clean root of the release -------------------------------------------------------
SUITE=${CLOUDAUTH_PACKAGES_SUITE:-bookworm}
echo "# Debian $SUITE"
MIRROR=${CLOUDAUTH_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY=${CLOUDAUTH_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}
SOURCES=("deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" "deb $SECURITY $SUITE-security main")
# ejabberd, prosody; systemd for sysusers/tmpfiles, systemd-analyze and
# booting the root; logrotate and apparmor to check their files
INCLUDE=ejabberd,prosody,systemd,logrotate,apparmor
root_tar "$SUITE" "$SUITE" "$INCLUDE" "$W/mmdebstrap.log" "${SOURCES[@]}" || die_setup "mmdebstrap failed"
[ "$ROOT_BUILT_S" = 0 ] || timing "mmdebstrap $SUITE + $INCLUDE ($(du -m "$ROOT_TAR" | cut -f1) MB, cached as $ROOT_TAR)"
R=$W/root
root_unpack "$ROOT_TAR" "$R" || die_setup "cannot unpack $ROOT_TAR"
# /proc again after the boot below (root_unpack unmounts it at exit)
mount_proc() { mount -t proc proc "$R/proc"; }
umount_proc() { ! mountpoint -q "$R/proc" || umount -l "$R/proc"; }
timing "root unpacked"

in_root() { chroot "$R" "$@"; }

# --- the packages ------------------------------------------------------------------
DEBS=${CLOUDAUTH_DEB_DIR:-}
if [ -z "$DEBS" ]; then
    DEBS=$W/debs
    # For another release than this machine's: built against a copy of the
    # clean root (its erlc, its ejabberd), which itself stays clean.
    BUILD_ROOT=""
    if [ "$SUITE" != "$(. /etc/os-release && echo "$VERSION_CODENAME")" ]; then
        BUILD_ROOT=$W/build-root
        root_unpack "$ROOT_TAR" "$BUILD_ROOT" || die_setup "cannot unpack $ROOT_TAR for the build"
    fi
    DEB_ROOT=$BUILD_ROOT "$ROOT/packaging/build-debs.sh" "$DEBS" > "$W/build-debs.log" 2>&1 || {
        tail -n 30 "$W/build-debs.log" | sed 's/^/#   /'
        die_setup "packaging/build-debs.sh failed"
    }
    timing "packaging/build-debs.sh${BUILD_ROOT:+ (DEB_ROOT: a copy of the $SUITE root)}"
fi
for p in cloudauth_"$ARCH" cloudauth-ejabberd_"$ARCH" cloudauth-prosody_all; do
    ls "$DEBS/${p%_*}_${VERSION}"-*"_${p##*_}.deb" >/dev/null 2>&1 || die_setup "no ${p%_*}_${VERSION}-*_${p##*_}.deb in $DEBS"
done


# --- apt install ----------------------------------------------------------------------
mkdir -p "$R/tmp/debs"
cp "$DEBS"/cloudauth_"$VERSION"-*_"$ARCH".deb "$DEBS"/cloudauth-ejabberd_"$VERSION"-*_"$ARCH".deb \
    "$DEBS"/cloudauth-prosody_"$VERSION"-*_all.deb "$R/tmp/debs/"
in_root sh -c 'cd /tmp/debs && DEBIAN_FRONTEND=noninteractive apt -o Dpkg::Use-Pty=0 install -y ./cloudauth_*.deb ./cloudauth-ejabberd_*.deb ./cloudauth-prosody_*.deb' \
    > "$W/apt.log" 2>&1
rc=$?
expect "apt install ./cloudauth_*.deb ./cloudauth-ejabberd_*.deb ./cloudauth-prosody_*.deb in a clean $SUITE root" 0 $rc
[ "$rc" = 0 ] || { tail -n 30 "$W/apt.log" | sed 's/^/#   /'; finish; }
grep -E '^(cloudauth|dpkg|E):' "$W/apt.log" | sed 's/^/#   /'
expect "packages installed" "install ok installed|install ok installed|install ok installed" \
    "$(in_root dpkg-query -W -f '${Status}|' cloudauth cloudauth-ejabberd cloudauth-prosody | sed 's/|$//')"
RELEASE=$(. "$R/etc/os-release" && echo "$VERSION_ID")
expect "the packages are built for Debian $RELEASE (version ~deb$RELEASE)" \
    "~deb$RELEASE|~deb$RELEASE|~deb$RELEASE" \
    "$(in_root dpkg-query -W -f '${Version}|' cloudauth cloudauth-ejabberd cloudauth-prosody | sed -e 's/|$//' -e 's/[^|~]*~/~/g')"
timing "apt install"

# --- installed files ----------------------------------------------------------------------
expect "cloudauth --version" "cloudauth $VERSION" "$(in_root cloudauth --version)"
expect "cloudauth-connect --version" "cloudauth-connect $VERSION" "$(in_root cloudauth-connect --version)"
for m in cloudauth cloudauth-token cloudauth-connect; do
    f=$R/usr/share/man/man1/$m.1.gz
    if [ -f "$f" ] && man -P cat -l "$f" 2>/dev/null | grep -q "^NAME"; then
        warnings=$(man --warnings -P cat -l "$f" 2>&1 >/dev/null)
        [ -z "$warnings" ] && ok "man page $m(1) installed, renders without warnings" \
            || not_ok "man page $m(1): $warnings"
    else
        not_ok "man page $m(1) missing or empty"
    fi
done
page=$(MANWIDTH=100 man -P cat -l "$R/usr/share/man/man1/cloudauth.1.gz" 2>/dev/null)
exit_status=$(echo "$page" | sed -n '/^EXIT STATUS/,/^[A-Z]/p')
for code in "0 +yes" "1 +no" "2 +backend +trouble"; do
    echo "$exit_status" | grep -Eq "^ *$code" && ok "cloudauth(1) EXIT STATUS: $code" \
        || not_ok "cloudauth(1) EXIT STATUS lacks '$code'"
done
echo "$page" | grep -q -- "--cache-storage" && ok "cloudauth(1) lists the settings (--cache-storage)" \
    || not_ok "cloudauth(1) lacks --cache-storage"

units="cloudauth.service cloudauth-ejabberd.socket cloudauth-prosody.socket cloudauth-saslauthd.socket cloudauth-postfix.socket"
missing=""
for u in $units; do [ -f "$R/lib/systemd/system/$u" ] || missing="$missing $u"; done
expect "systemd units installed" "" "$missing"
# shellcheck disable=SC2046
verify=$(in_root systemd-analyze verify --man=no $(printf '/lib/systemd/system/%s ' $units) 2>&1)
rc=$?
expect "systemd-analyze verify (in the root)" 0 $rc "${verify:-no complaints}"
grep -q '^SystemCallFilter=@system-service' "$R/lib/systemd/system/cloudauth.service" \
    && grep -q '^CapabilityBoundingSet=$' "$R/lib/systemd/system/cloudauth.service" \
    && ok "cloudauth.service installed with its hardening" || not_ok "cloudauth.service lacks its hardening"
[ -f "$R/usr/lib/sysusers.d/cloudauth.conf" ] && [ -f "$R/usr/lib/tmpfiles.d/cloudauth.conf" ] \
    && ok "sysusers.d and tmpfiles.d files installed" || not_ok "sysusers.d/tmpfiles.d file missing"

# the postinst ran systemd-sysusers and systemd-tmpfiles (no systemd running)
expect "user xcauth (sysusers.d): home, shell" "/var/lib/xcauth:/usr/sbin/nologin" \
    "$(in_root getent passwd xcauth | cut -d: -f6,7)"
in_root getent group xcauth >/dev/null; expect "group xcauth" 0 $?
for d in "/var/log/xcauth 2770" "/var/lib/xcauth 770" "/run/cloudauth 755"; do
    expect "directory ${d% *} (tmpfiles.d)" "xcauth:xcauth ${d#* }" "$(in_root stat -c '%U:%G %a' "${d% *}" 2>&1)"
done
logrotate_debug=$(in_root logrotate -d /etc/logrotate.d/cloudauth 2>&1)
rc=$?
if [ "$rc" = 0 ] && ! echo "$logrotate_debug" | grep -qi "error"; then
    ok "logrotate -d /etc/logrotate.d/cloudauth parses"
else
    not_ok "logrotate -d: exit $rc: $(echo "$logrotate_debug" | grep -i error | head -n 3)"
fi
[ "$(in_root dpkg-query -W -f '${Conffiles}' cloudauth | awk '{print $1}')" = /etc/logrotate.d/cloudauth ] \
    && ok "the logrotate file is a conffile" || not_ok "/etc/logrotate.d/cloudauth is not a conffile"

MODULE=/usr/lib/cloudauth/ejabberd-modules/ejabberd_auth_cloud
for f in ejabberd_auth_cloud.spec ebin/ejabberd_auth_cloud.beam ebin/ejabberd_auth_cloud.app priv/ejabberd_auth_cloud_nif.so; do
    [ -f "$R$MODULE/$f" ] || not_ok "module file $MODULE/$f missing"
done
[ -f "$R$MODULE/priv/ejabberd_auth_cloud_nif.so" ] && ok "module in ext_mod layout under $MODULE"
grep -q '^{url, "https\?://' "$R$MODULE/ejabberd_auth_cloud.spec" && ok "the spec names the project's URL" \
    || not_ok "the spec has no url"
expect "postinst linked the module into ~ejabberd/.ejabberd-modules" "$MODULE" \
    "$(readlink "$R/var/lib/ejabberd/.ejabberd-modules/ejabberd_auth_cloud")"
INCLUDE_LINE="include if exists <local/cloudauth-ejabberd>"
# Debian 12's ejabberd has an AppArmor profile; Debian 13's dropped it
# (ejabberd 24.12-3: "breaks AppArmor 4"), and then the postinst adds nothing.
EJABBERD_PROFILE=$([ -f "$R/etc/apparmor.d/usr.sbin.ejabberdctl" ] && echo yes)
if [ -n "$EJABBERD_PROFILE" ]; then
    grep -qxF "$INCLUDE_LINE" "$R/etc/apparmor.d/local/usr.sbin.ejabberdctl" \
        && ok "AppArmor: ejabberd's local file includes local/cloudauth-ejabberd" \
        || not_ok "AppArmor: no include line in /etc/apparmor.d/local/usr.sbin.ejabberdctl"
    parsed=$(in_root apparmor_parser -Q -K -T /etc/apparmor.d/usr.sbin.ejabberdctl 2>&1 | grep -v 'Cache read/write disabled')
    expect "AppArmor: ejabberd's profile with cloudauth's rules parses" "" "$parsed"
    in_root apparmor_parser -p /etc/apparmor.d/usr.sbin.ejabberdctl 2>/dev/null \
        | grep -q '^/usr/bin/cloudauth ix,' && ok "AppArmor: the exec rule for /usr/bin/cloudauth is in the profile" \
        || not_ok "AppArmor: /usr/bin/cloudauth ix not in the preprocessed profile"
else
    [ ! -e "$R/etc/apparmor.d/local/usr.sbin.ejabberdctl" ] \
        && ok "AppArmor: ejabberd ships no profile on $SUITE, and the postinst added no include file" \
        || not_ok "AppArmor: an include file for a profile that does not exist"
fi
timing "installed files"

# --- ejabberd in the root ----------------------------------------------------------------
SECRET="pkg-secret-$$-$RANDOM"
start_backend "$W" "$SECRET" "$STANDARD_USERS" || die_setup "test backend did not start"
install -m 0755 "$SANDBOX" "$R/usr/local/bin/ejabberd-sandbox"
# sandbox DIR ...: ejabberd-sandbox in the root as the ejabberd user (and its
# groups), with ejabberd's own contributed-modules directory
sandbox() {
    chroot --userspec=ejabberd:ejabberd "$R" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/var/lib/ejabberd EJABBERD_SANDBOX_CONTRIB=/var/lib/ejabberd/.ejabberd-modules \
        EJABBERD_SANDBOX_LOGLEVEL=info /usr/local/bin/ejabberd-sandbox "$@"
}
start_in_root() { # start_in_root NAME PORT YAML
    in_root install -d -o ejabberd -g ejabberd "/tmp/$1"
    on_exit "sandbox stop /tmp/$1"
    sandbox start "/tmp/$1" "$2" "$3" || {
        echo "# ejabberd log tail:"; tail -n 30 "$R/tmp/$1/log/ejabberd.log" 2>/dev/null | sed 's/^/#   /'
        echo "# erl.out tail:"; tail -n 30 "$R/tmp/$1/log/erl.out" 2>/dev/null | sed 's/^/#   /'
        return 1
    }
}
mint_installed() { # mint_installed USER: a JSXC token by the installed cloudauth
    in_root cloudauth -c /dev/null --secret-file /etc/cloudauth/secret token "$1" localhost --ttl 1h
}
install -d "$R/etc/cloudauth"
printf '%s\n' "$SECRET" > "$R/etc/cloudauth/secret"
in_root chown root:xcauth /etc/cloudauth/secret
chmod 0640 "$R/etc/cloudauth/secret"
printf '%s\n' "$SECRET" > "$R/etc/ejabberd/cloud-secret"
in_root chown ejabberd:ejabberd /etc/ejabberd/cloud-secret
chmod 0600 "$R/etc/ejabberd/cloud-secret"
ALICE_TOKEN=$(mint_installed alice)
[ -n "$ALICE_TOKEN" ] && ok "the installed cloudauth mints a token" || not_ok "cloudauth token printed nothing"
login_checks() { # login_checks PORT WHAT
    local port=$1 what=$2 before
    before=$(backend_count auth)
    login alice@localhost alice-pw "$port"; expect "$what: password -> session" 0 $?
    login alice@localhost wrong-pw "$port"; expect "$what: wrong password -> refused" 1 $?
    expect "$what: password logins asked the backend" 2 $(( $(backend_count auth) - before ))
    before=$(backend_count auth)
    login alice@localhost "$ALICE_TOKEN" "$port"; expect "$what: JSXC token -> session" 0 $?
    login bob@localhost "$ALICE_TOKEN" "$port"; expect "$what: alice's token for bob -> refused" 1 $?
    expect "$what: token logins never asked the backend" 0 $(( $(backend_count auth) - before ))
}

# auth_method: cloud, the module the package installed
PORT=$(free_port)
cat > "$R/tmp/cloud.yml" <<YML
auth_method: cloud
auth_cloud_url: "$BACKEND_URL"
auth_cloud_secret_file: "/etc/ejabberd/cloud-secret"
YML
if start_in_root ejd-cloud "$PORT" /tmp/cloud.yml > "$W/ejd-cloud.out" 2>&1; then
    ok "ejabberd in the root (auth_method: cloud) started"
    expect "ejabberd loaded the module from ~ejabberd/.ejabberd-modules (the package's symlink)" \
        '"/var/lib/ejabberd/.ejabberd-modules/ejabberd_auth_cloud/ebin/ejabberd_auth_cloud.beam"' \
        "$(sandbox eval /tmp/ejd-cloud 'code:which(ejabberd_auth_cloud).' 2>&1)"
    expect "the installed NIF is loaded" ok "$(sandbox eval /tmp/ejd-cloud 'ejabberd_auth_cloud_nif:noop().' 2>&1)"
    expect "the module's beams were compiled by this release's compiler (as ejabberd's own)" true \
        "$(sandbox eval /tmp/ejd-cloud 'V = fun(M) -> proplists:get_value(version, M:module_info(compile)) end, V(ejabberd_auth_cloud) == V(ejabberd_auth).' 2>&1)"
    login_checks "$PORT" "in the VM"
    sandbox stop /tmp/ejd-cloud >/dev/null
else
    sed 's/^/#   /' "$W/ejd-cloud.out"
    not_ok "ejabberd in the root (auth_method: cloud) did not start"
fi
timing "ejabberd in the root, auth_method: cloud"

# auth_method: external, /usr/bin/cloudauth as docs/admin/ejabberd-extauth.md says: /etc/xcauth.conf
# readable by the group xcauth, ejabberd in that group (also for the log)
in_root adduser --quiet ejabberd xcauth
cat > "$R/etc/xcauth.conf" <<CONF
# written by test/e2e/packages.sh
url = $BACKEND_URL
secret-file = /etc/cloudauth/secret
timeout = 3,5
# Without it the service would log to the journal (systemd) and extauth to
# /var/log/xcauth; with it both use the directory, as xcauth did.
log = /var/log/xcauth
CONF
in_root chown root:xcauth /etc/xcauth.conf
chmod 0640 "$R/etc/xcauth.conf"
PORT=$(free_port)
cat > "$R/tmp/extauth.yml" <<YML
auth_method: external
extauth_program: "/usr/bin/cloudauth -t ejabberd -c /etc/xcauth.conf"
extauth_pool_size: 1
auth_use_cache: false
YML
LOG=$R/var/log/xcauth/cloudauth.log
if start_in_root ejd-extauth "$PORT" /tmp/extauth.yml > "$W/ejd-extauth.out" 2>&1; then
    ok "ejabberd in the root (auth_method: external, /usr/bin/cloudauth) started"
    login_checks "$PORT" "extauth"
    sandbox stop /tmp/ejd-extauth >/dev/null
    grep -q "auth alice@localhost: yes via token" "$LOG" 2>/dev/null \
        && ok "extauth cloudauth (as ejabberd, group xcauth) logged to /var/log/xcauth/cloudauth.log" \
        || not_ok "no token decision in /var/log/xcauth/cloudauth.log"
    grep -qF -e alice-pw -e "$SECRET" -e "$ALICE_TOKEN" "$LOG" && not_ok "the log leaks a secret" \
        || ok "no password, token or secret in the log"
else
    sed 's/^/#   /' "$W/ejd-extauth.out"
    not_ok "ejabberd in the root (auth_method: external) did not start"
fi
# a rotation in the root (no systemd: postrotate's systemctl fails, quietly):
# the new, empty log belongs to xcauth and its group may write it, so the
# service below can take over the file ejabberd's cloudauth created
in_root logrotate -f -s /tmp/logrotate.state /etc/logrotate.d/cloudauth > "$W/logrotate-chroot.out" 2>&1
expect "logrotate -f /etc/logrotate.d/cloudauth (in the root)" 0 $? "$(head -c 300 "$W/logrotate-chroot.out")"
expect "rotated: the new log's mode and owner" "660 xcauth:xcauth" "$(in_root stat -c '%a %U:%G' /var/log/xcauth/cloudauth.log 2>&1)"
grep -q "yes via token" "$LOG.1" 2>/dev/null && ok "rotated: the old log is cloudauth.log.1" || not_ok "no cloudauth.log.1 after the rotation"
timing "ejabberd in the root, auth_method: external"

# --- the root booted: cloudauth.service ----------------------------------------------------
# ejabberd's and Prosody's own services would listen on 5222, 5269 and 4369
# (the network is the host's): masked. cloudauth's ejabberd and prosody
# sockets are the packaged unix sockets; Prosody's user joins the group
# xcauth, as docs/admin/install.md says.
in_root systemctl mask ejabberd.service epmd.service epmd.socket prosody.service >/dev/null 2>&1
for s in ejabberd prosody; do
    grep -qx "ListenStream=/run/cloudauth/$s.sock" "$R/lib/systemd/system/cloudauth-$s.socket" \
        && grep -qx "SocketGroup=xcauth" "$R/lib/systemd/system/cloudauth-$s.socket" \
        && grep -qx "SocketMode=0660" "$R/lib/systemd/system/cloudauth-$s.socket" \
        && ok "cloudauth-$s.socket: a unix socket for the group xcauth, not loopback TCP" \
        || not_ok "cloudauth-$s.socket: $(grep '^ListenStream\|^Socket' "$R/lib/systemd/system/cloudauth-$s.socket" | tr '\n' ' ')"
    in_root systemctl enable "cloudauth-$s.socket" >/dev/null 2>&1
    expect "systemctl enable cloudauth-$s.socket" enabled "$(in_root systemctl is-enabled "cloudauth-$s.socket" 2>&1)"
done
in_root adduser --quiet prosody xcauth
# Prosody with the installed module, from its default plugin path
XPORT=$(free_port)
install -d "$R/var/lib/prosody-test/data"
cat > "$R/var/lib/prosody-test/prosody.cfg.lua" <<LUA
pidfile = "/var/lib/prosody-test/prosody.pid"
data_path = "/var/lib/prosody-test/data"
log = { info = "/var/lib/prosody-test/prosody.log" }
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { $XPORT }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
modules_enabled = { "roster", "saslauth", "disco", "ping" }
modules_disabled = { "s2s", "offline" }

VirtualHost "localhost"
    authentication = "cloudauth"
LUA
in_root chown -R prosody:prosody /var/lib/prosody-test
umount_proc
MACHINE=cloudauth-pkgtest-$$
systemd-nspawn -q -D "$R" --boot --register=no --keep-unit --machine="$MACHINE" --console=passive \
    > "$W/nspawn.log" 2>&1 &
NSPAWN=$!
stop_nspawn() {
    pid_alive() { [ -d "/proc/$1" ]; }
    kill -TERM "$NSPAWN" 2>/dev/null || return 0
    for _ in $(seq 1 300); do pid_alive "$NSPAWN" || return 0; sleep 0.1; done
    kill -KILL "$NSPAWN" 2>/dev/null
}
on_exit stop_nspawn
# the container's init: systemd, the child of systemd-nspawn
CPID=""
for _ in $(seq 1 100); do
    [ -d "/proc/$NSPAWN" ] || break
    CPID=$(ps -o pid=,comm= --ppid "$NSPAWN" | awk '$2 == "systemd" { print $1; exit }')
    [ -n "$CPID" ] && break
    sleep 0.1
done
in_ct() { nsenter -t "$CPID" -a "$@"; }
state=""
for _ in $(seq 1 600); do
    [ -n "$CPID" ] || break
    state=$(in_ct systemctl is-system-running 2>/dev/null)
    case "$state" in running|degraded) break;; esac
    sleep 0.1
done
case "$state" in
running) ok "the root boots with systemd-nspawn (system running)";;
degraded) not_ok "the root boots degraded: $(in_ct systemctl --failed --no-legend --plain 2>&1 | tr '\n' ' ')";;
*) not_ok "the root did not boot (state '$state')"; tail -n 20 "$W/nspawn.log" | sed 's/^/#   /';;
esac
timing "boot"
if [ -n "$CPID" ]; then
    expect "cloudauth.service inactive before the first connection" inactive "$(in_ct systemctl is-active cloudauth.service)"
    for s in ejabberd prosody; do
        expect "/run/cloudauth/$s.sock: mode, owner, group" "660 xcauth:xcauth socket" \
            "$(in_ct stat -c '%a %U:%G %F' "/run/cloudauth/$s.sock" 2>&1)"
    done
    # The container's /run through its init's root (a tmpfs of its own).
    ESOCK=/proc/$CPID/root/run/cloudauth/ejabberd.sock
    ask() { # ask FRAME: the 4-byte answer of the socket as hex
        /usr/bin/python3 - "$ESOCK" "$1" <<'PY'
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
payload = sys.argv[2].encode()
s.sendall(struct.pack(">H", len(payload)) + payload)
answer = b""
while len(answer) < 4:
    chunk = s.recv(4 - len(answer))
    if not chunk:
        break
    answer += chunk
print(answer.hex())
PY
    }
    expect "socket activation: alice's password -> yes" 00020001 "$(ask auth:alice:localhost:alice-pw)"
    expect "cloudauth.service: wrong password -> no" 00020000 "$(ask auth:alice:localhost:wrong-pw)"
    expect "cloudauth.service: JSXC token -> yes" 00020001 "$(ask "auth:alice:localhost:$ALICE_TOKEN")"
    expect "cloudauth.service started by its socket" active "$(in_ct systemctl is-active cloudauth.service)"
    expect "cloudauth.service runs as xcauth" xcauth \
        "$(in_ct stat -c %U "/proc/$(in_ct systemctl show -p MainPID --value cloudauth.service)" 2>&1)"
    exposure=$(in_ct systemd-analyze security --no-pager cloudauth.service 2>/dev/null | sed -n 's/.*Overall exposure level for cloudauth.service: //p')
    echo "# systemd-analyze security cloudauth.service: ${exposure:-?}"
    case "$exposure" in [0-2].*) ok "hardened: exposure $exposure";; *) not_ok "exposure '$exposure' (expected below 3)";; esac
    in_ct systemd-run -q --unit=prosody-test --uid=prosody --gid=prosody \
        prosody -F --config /var/lib/prosody-test/prosody.cfg.lua
    for _ in $(seq 100); do
        (exec 3<> "/dev/tcp/127.0.0.1/$XPORT") 2>/dev/null && break
        sleep 0.1
    done
    if (exec 3<> "/dev/tcp/127.0.0.1/$XPORT") 2>/dev/null; then
        ok "Prosody in the booted root (authentication = \"cloudauth\") listens"
        login alice@localhost alice-pw "$XPORT"; expect "Prosody: password -> session" 0 $?
        login alice@localhost wrong-pw "$XPORT"; expect "Prosody: wrong password -> refused" 1 $?
        login alice@localhost "$ALICE_TOKEN" "$XPORT"; expect "Prosody: JSXC token -> session" 0 $?
    else
        not_ok "Prosody in the booted root did not listen on $XPORT"
        tail -n 20 "$R/var/lib/prosody-test/prosody.log" 2>/dev/null | sed 's/^/#   /'
        in_ct journalctl -u prosody-test --no-pager 2>/dev/null | tail -n 10 | sed 's/^/#   /'
    fi
    sleep 0.5
    grep -q "socket mode, version $VERSION" "$LOG" && ok "cloudauth.service logs to /var/log/xcauth/cloudauth.log" \
        || not_ok "no 'socket mode' line in /var/log/xcauth/cloudauth.log"
    in_ct logrotate -f /etc/logrotate.d/cloudauth > "$W/logrotate.out" 2>&1
    expect "logrotate -f /etc/logrotate.d/cloudauth (booted, postrotate: SIGHUP)" 0 $? "$(head -c 300 "$W/logrotate.out")"
    expect "the new log: mode, owner" "660 xcauth:xcauth" "$(in_ct stat -c '%a %U:%G' /var/log/xcauth/cloudauth.log 2>&1)"
    ask auth:alice:localhost:alice-pw >/dev/null
    sleep 0.5
    grep -q "SIGHUP: log file reopened" "$LOG" && grep -q "auth alice@localhost: yes" "$LOG" \
        && ok "after the rotation the service reopened its log and logs there" \
        || not_ok "nothing logged after the rotation: $(tail -n 3 "$LOG" 2>/dev/null)"
    grep -q "socket mode" "$LOG.1" 2>/dev/null && ok "the service's rotated log is cloudauth.log.1" \
        || not_ok "no socket mode line in cloudauth.log.1"
fi
stop_nspawn
timing "cloudauth.service under systemd"

# --- apt purge ---------------------------------------------------------------------------------
mount_proc || die_setup "cannot mount /proc in the root again"
in_root sh -c 'DEBIAN_FRONTEND=noninteractive apt -o Dpkg::Use-Pty=0 purge -y cloudauth cloudauth-ejabberd cloudauth-prosody' \
    > "$W/purge.log" 2>&1
expect "apt purge cloudauth cloudauth-ejabberd cloudauth-prosody" 0 $? "$(grep -E '^(E|dpkg):' "$W/purge.log" | head -n 3)"
[ ! -e "$R/var/lib/ejabberd/.ejabberd-modules/ejabberd_auth_cloud" ] && [ ! -e "$R$MODULE" ] \
    && ok "purged: the module and its symlink are gone" || not_ok "purged: the module or its symlink is left"
! grep -qF "$INCLUDE_LINE" "$R/etc/apparmor.d/local/usr.sbin.ejabberdctl" && [ ! -e "$R/etc/apparmor.d/local/cloudauth-ejabberd" ] \
    && ok "purged: the AppArmor include line and rules are gone" || not_ok "purged: AppArmor include or rules left"
if [ -n "$EJABBERD_PROFILE" ]; then
    parsed=$(in_root apparmor_parser -Q -K -T /etc/apparmor.d/usr.sbin.ejabberdctl 2>&1 | grep -v 'Cache read/write disabled')
    expect "purged: ejabberd's profile still parses" "" "$parsed"
fi
ls "$R"/var/log/xcauth/cloudauth.log* >/dev/null 2>&1 && not_ok "purged: the log is left" || ok "purged: the log is gone"
[ -d "$R/var/lib/xcauth" ] && in_root getent passwd xcauth >/dev/null && [ -f "$R/etc/xcauth.conf" ] \
    && ok "purged: the xcauth user, /var/lib/xcauth and /etc/xcauth.conf stay" || not_ok "purged: xcauth's user, state or config is gone"
timing "apt purge"
echo "# timing: total $(( $(date +%s) - T0 )) s"
finish
