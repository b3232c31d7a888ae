#!/bin/bash
# Builds the Debian packages, in one command, with nothing but cargo, rebar3
# and dpkg's own tools:
#
#   cloudauth_VERSION_ARCH.deb           cloudauth, cloudauth-connect, their man pages,
#                                        systemd units, sysusers.d, tmpfiles.d, logrotate
#   cloudauth-ejabberd_VERSION_ARCH.deb  the ejabberd module (beams + NIF) in ext_mod
#                                        layout, the AppArmor rules for ejabberd's profile
#   cloudauth-prosody_VERSION_all.deb    mod_auth_cloudauth in Prosody's plugin path
#
# Usage: packaging/build-debs.sh [OUT_DIR]      (default: dist/)
# Then:  apt install ./dist/cloudauth_*.deb ./dist/cloudauth-ejabberd_*.deb
#
# Packages are for one Debian release: the one this machine runs, or the one
# installed in the directory DEB_ROOT names (a chroot of another release, say
# Debian 13 made by mmdebstrap with ejabberd in it: test/e2e/packages_trixie.sh
# does that). The version says which: 0.1.0-1~deb12, 0.1.0-1~deb13 (the
# release's number from its /etc/os-release; `~` so that a release's own
# later packages and an upgrade to the next release's build both win).
#
# Build needs (Debian 12): cargo, rebar3, erlang-dev, ejabberd (its headers and
# behaviours), dpkg-dev (dpkg-shlibdeps). The module's beams are compiled for
# the release's Erlang/OTP against its ejabberd's headers: here by rebar3, or
# with DEB_ROOT by erlang/install.sh run in the root with the root's erlc
# (Erlang promises loading beams only two major releases back). The Rust
# binaries and the NIF are built here either way: Debian 13's rustc is older
# than this workspace needs, and they link nothing but libc and libgcc_s, whose
# symbol versions dpkg-shlibdeps reads here the same as there (Debian 12's
# glibc 2.36 binaries run on Debian 13's 2.41); the package test installs them
# into a clean root of each release.
#
# Environment: DEB_ROOT (see above), CARGO_TARGET_DIR (cargo's, honoured),
# DEB_REVISION (default 1), DEB_MAINTAINER, SOURCE_DATE_EPOCH (default: the
# last commit's time; dates the man pages and every file in the packages).
set -euo pipefail
umask 022
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${1:-dist}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
TARGET=${CARGO_TARGET_DIR:-target}
case "$TARGET" in /*) ;; *) TARGET=$ROOT/$TARGET;; esac
REL=$TARGET/release

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'build-debs: %s\n' "$*" >&2; exit 1; }

for tool in cargo rebar3 dpkg-deb dpkg-shlibdeps; do
    command -v "$tool" >/dev/null || die "$tool not found (Debian: cargo via rustup, rebar3, dpkg-dev)"
done

# --- what and for whom --------------------------------------------------------
VERSION=$(sed -n '/^\[workspace.package\]/,/^\[/ s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
[ -n "$VERSION" ] || die "no version in Cargo.toml [workspace.package]"
APP_VSN=$(sed -n 's/.*{vsn, *"\([^"]*\)"}.*/\1/p' erlang/ejabberd_auth_cloud.app.src)
[ "$APP_VSN" = "$VERSION" ] || die "erlang/ejabberd_auth_cloud.app.src says $APP_VSN, Cargo.toml $VERSION"
DEB_ROOT=${DEB_ROOT:-}
if [ -n "$DEB_ROOT" ]; then
    [ -x "$DEB_ROOT/usr/bin/erlc" ] || die "DEB_ROOT=$DEB_ROOT: no usr/bin/erlc there (install ejabberd in it)"
    DEB_ROOT=$(cd "$DEB_ROOT" && pwd)
fi
# in_release CMD...: CMD on the release the packages are for
in_release() { if [ -n "$DEB_ROOT" ]; then chroot "$DEB_ROOT" "$@"; else "$@"; fi; }
RELEASE=$(. "${DEB_ROOT}/etc/os-release" && echo "${VERSION_ID:-}")
[ -n "$RELEASE" ] || die "${DEB_ROOT:-this machine}: /etc/os-release has no VERSION_ID (Debian testing?)"
DEBVERSION=$VERSION-${DEB_REVISION:-1}~deb$RELEASE
ARCH=$(dpkg --print-architecture)
HOMEPAGE=$(sed -n 's/^{url, *"\([^"]*\)"}.*/\1/p' erlang/ejabberd_auth_cloud.spec)
MAINTAINER=${DEB_MAINTAINER:-"cloudauth maintainers <maintainers@users.noreply.h-seed-03282271.example>"}
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
DATE=$(date -u -d "@$SOURCE_DATE_EPOCH" +%F)
ERLANG_BASE=$(in_release dpkg-query -W -f '${Version}' erlang-base 2>/dev/null) || die "erlang-base is not installed"
ERLANG_BASE=${ERLANG_BASE%-*}    # 1:25.2.3+dfsg-1+deb12u4 -> 1:25.2.3+dfsg

# --- build --------------------------------------------------------------------
t0=$(date +%s)
say "cargo build --release (cloudauth, cloudauth-connect)"
cargo build --release --locked -p cloudauth -p cloudauth-connect
say "man pages from the command line's definition (examples/man.rs)"
cargo build --release --locked -p cloudauth --example man
if [ -z "$DEB_ROOT" ]; then
    say "rebar3 compile (the ejabberd module and its NIF)"
    rebar3 compile
    EBIN=_build/default/lib/ejabberd_auth_cloud/ebin
    NIF_SO=priv/ejabberd_auth_cloud_nif.so
else
    say "the NIF (cargo), the beams with the erlc of $DEB_ROOT (erlang/install.sh there)"
    cargo build --release --locked -p cloud_nif
    IN=$DEB_ROOT/tmp/cloudauth-build.$$
    rm -rf "$IN"
    mkdir -p "$IN/erlang"
    trap 'rm -rf "$IN"' EXIT
    cp erlang/*.erl erlang/*.app.src erlang/*.spec erlang/install.sh "$IN/erlang/"
    cp "$REL/libcloud_nif.so" "$IN/nif.so"
    chroot "$DEB_ROOT" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin NIF="${IN#"$DEB_ROOT"}/nif.so" \
        sh "${IN#"$DEB_ROOT"}/erlang/install.sh" "${IN#"$DEB_ROOT"}/out" \
        || die "erlang/install.sh in $DEB_ROOT failed"
    EBIN=$IN/out/ejabberd_auth_cloud/ebin
    NIF_SO=$IN/out/ejabberd_auth_cloud/priv/ejabberd_auth_cloud_nif.so
fi
[ -f "$EBIN/ejabberd_auth_cloud.beam" ] && [ -f "$NIF_SO" ] \
    || die "the build left no module or NIF"
say "built in $(( $(date +%s) - t0 )) s"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK" ${IN:+"$IN"}' EXIT

# --- helpers --------------------------------------------------------------------
# shlibs FILE...: the Depends on shared libraries of these ELF files, as
# dpkg-shlibdeps computes them from the libraries' symbols files.
shlibs() {
    local d=$WORK/shlibs f args=()
    rm -rf "$d"; mkdir -p "$d/debian"
    printf 'Source: cloudauth\n\nPackage: cloudauth\nArchitecture: any\n' > "$d/debian/control"
    for f in "$@"; do args+=("-e$f"); done
    # the NIF's enif_* symbols are the VM's: not in any library, by design
    (cd "$d" && dpkg-shlibdeps -O --warnings=0 "${args[@]}") | sed -n 's/^shlibs:Depends=//p'
}

# crates PACKAGE: the crates.io crates compiled into PACKAGE, with their licenses
crates() {
    cargo tree -p "$1" -e normal --prefix none -f '{p} {l}' --locked --offline \
        | { grep -v -e '(proc-macro)' -e ' (/' || true; } | sort -u | sed 's/^/  /'
}

# copyright PACKAGE RUST_PACKAGE...: machine-readable debian/copyright
copyright() {
    local pkg=$1 p
    shift
    {
        echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
        echo "Upstream-Name: cloudauth"
        echo "Source: $HOMEPAGE"
        if [ $# -gt 0 ]; then
            echo "Comment: The binaries are statically linked with these crates from"
            echo " crates.io, each under the license named (SQLite, through"
            echo " libsqlite3-sys, is in the public domain):"
            for p in "$@"; do crates "$p"; done | sort -u | sed 's/^  / /'
        fi
        echo
        echo "Files: *"
        sed -n 's/^Copyright (c) /Copyright: /p' LICENSE
        echo "License: MIT"
        echo
        echo "License: MIT"
        sed -n '5,$p' LICENSE | sed -e 's/^$/./' -e 's/^/ /'
    } > "$WORK/$pkg/usr/share/doc/$pkg/copyright"
}

changelog() { # changelog PACKAGE
    printf '%s (%s) unstable; urgency=medium\n\n  * Built from commit %s by packaging/build-debs.sh.\n\n -- %s  %s\n' \
        "$1" "$DEBVERSION" "$COMMIT" "$MAINTAINER" "$(date -u -R -d "@$SOURCE_DATE_EPOCH")" \
        | gzip -9n > "$WORK/$1/usr/share/doc/$1/changelog.Debian.gz"
}

# finish PACKAGE: md5sums, Installed-Size, file modes and times, dpkg-deb
finish() {
    local pkg=$1 dir=$WORK/$1 deb
    (cd "$dir" && find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\0' \
        | LC_ALL=C sort -z | xargs -0 -r md5sum) > "$dir/DEBIAN/md5sums"
    [ -s "$dir/DEBIAN/md5sums" ] || rm -f "$dir/DEBIAN/md5sums"
    sed -i "s/^Installed-Size: .*/Installed-Size: $(du -sk --exclude=DEBIAN "$dir" | cut -f1)/" "$dir/DEBIAN/control"
    find "$dir" -type d -exec chmod 0755 {} +
    find "$dir" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
    deb=$OUT/${pkg}_${DEBVERSION}_$(sed -n 's/^Architecture: //p' "$dir/DEBIAN/control").deb
    dpkg-deb --root-owner-group -Zxz --build "$dir" "$deb" >/dev/null
    say "$(basename "$deb"): $(du -k "$deb" | cut -f1) KiB"
}

doc_dir() { install -d "$WORK/$1/usr/share/doc/$1"; }

# --- cloudauth ------------------------------------------------------------------
P=$WORK/cloudauth
install -d "$P/DEBIAN" "$P/usr/bin" "$P/usr/share/man/man1" "$P/lib/systemd/system" \
    "$P/usr/lib/sysusers.d" "$P/usr/lib/tmpfiles.d" "$P/etc/logrotate.d"
install -m 0755 "$REL/cloudauth" "$REL/cloudauth-connect" "$P/usr/bin/"
"$REL/examples/man" "$WORK/man" "$DATE" >/dev/null
sed "s/^\.TH CLOUDAUTH-CONNECT 1 \"\"/.TH CLOUDAUTH-CONNECT 1 \"$DATE\"/" \
    native/cloudauth-connect/cloudauth-connect.1 > "$WORK/man/cloudauth-connect.1"
for m in cloudauth cloudauth-token cloudauth-connect; do
    gzip -9n < "$WORK/man/$m.1" > "$P/usr/share/man/man1/$m.1.gz"
done
install -m 0644 systemd/cloudauth.service systemd/cloudauth-*.socket "$P/lib/systemd/system/"
install -m 0644 systemd/sysusers.d/cloudauth.conf "$P/usr/lib/sysusers.d/"
install -m 0644 systemd/tmpfiles.d/cloudauth.conf "$P/usr/lib/tmpfiles.d/"
install -m 0644 packaging/logrotate/cloudauth "$P/etc/logrotate.d/cloudauth"
doc_dir cloudauth
# README.md stays uncompressed: cloudauth.service's Documentation= names it.
install -m 0644 README.md "$P/usr/share/doc/cloudauth/"
for d in docs docs/admin docs/reference docs/dev; do
    install -D -m 0644 -t "$P/usr/share/doc/cloudauth/$d" "$d"/*.md
done
install -D -m 0644 -t "$P/usr/share/doc/cloudauth/prosody" prosody/README.md
copyright cloudauth cloudauth cloudauth-connect
changelog cloudauth
install -m 0755 packaging/deb/cloudauth/postinst packaging/deb/cloudauth/prerm \
    packaging/deb/cloudauth/postrm "$P/DEBIAN/"
echo /etc/logrotate.d/cloudauth > "$P/DEBIAN/conffiles"
cat > "$P/DEBIAN/control" <<EOF
Package: cloudauth
Version: $DEBVERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: 0
Depends: $(shlibs "$P/usr/bin/cloudauth" "$P/usr/bin/cloudauth-connect"), systemd | systemd-standalone-sysusers | adduser
Recommends: logrotate
Suggests: cloudauth-ejabberd, cloudauth-prosody
Section: net
Priority: optional
Homepage: $HOMEPAGE
Description: XMPP and mail server authentication against Nextcloud
 cloudauth decides whether a user may log in to ejabberd, Prosody, Postfix or
 Cyrus SASL with a password, and whether a user exists, by asking Nextcloud
 (the JSXC app's API or Nextcloud's own OCS API) or a JSON login API, or by
 checking a token locally (JSXC time-limited tokens, Prosody mod_auth_token
 TOTP tokens). A password cache keeps users logged in while Nextcloud is down.
 .
 A drop-in replacement for xcauth (xmpp-cloud-auth): same command line, same
 /etc/xcauth.conf, same state database, same user (xcauth). This package has
 cloudauth (ejabberd extauth, Prosody, saslauthd and Postfix protocols on
 stdin/stdout or sockets), cloudauth-connect (an extauth program relaying to
 a cloudauth socket), and systemd units for socket mode (not enabled).
EOF
finish cloudauth

# --- cloudauth-ejabberd -----------------------------------------------------------
P=$WORK/cloudauth-ejabberd
M=$P/usr/lib/cloudauth/ejabberd-modules/ejabberd_auth_cloud
install -d "$P/DEBIAN" "$M/ebin" "$M/priv" "$P/etc/apparmor.d/local"
install -m 0644 "$EBIN"/*.beam "$EBIN/ejabberd_auth_cloud.app" "$M/ebin/"
install -m 0644 "$NIF_SO" "$M/priv/"
install -m 0644 erlang/ejabberd_auth_cloud.spec "$M/"
install -m 0644 packaging/apparmor/cloudauth-ejabberd "$P/etc/apparmor.d/local/cloudauth-ejabberd"
doc_dir cloudauth-ejabberd
copyright cloudauth-ejabberd cloud_nif
changelog cloudauth-ejabberd
install -m 0755 packaging/deb/cloudauth-ejabberd/postinst packaging/deb/cloudauth-ejabberd/postrm "$P/DEBIAN/"
echo /etc/apparmor.d/local/cloudauth-ejabberd > "$P/DEBIAN/conffiles"
cat > "$P/DEBIAN/control" <<EOF
Package: cloudauth-ejabberd
Version: $DEBVERSION
Architecture: $ARCH
Maintainer: $MAINTAINER
Installed-Size: 0
Depends: $(shlibs "$M/priv/ejabberd_auth_cloud_nif.so"), ejabberd (>= 23.01), erlang-base (>= $ERLANG_BASE), erlang-abi (= 17.0)
Suggests: cloudauth
Section: net
Priority: optional
Homepage: $HOMEPAGE
Description: ejabberd authentication against Nextcloud, in the VM (cloudauth)
 The ejabberd module ejabberd_auth_cloud (auth_method: cloud): cloudauth's
 core as a NIF inside ejabberd, without extauth processes. Users log in with
 their Nextcloud password (the JSXC app's API, Nextcloud's OCS API, or a JSON
 login API) or a token checked locally; Nextcloud groups can become shared
 roster groups.
 .
 Installed in ext_mod layout under /usr/lib/cloudauth/ejabberd-modules and
 linked into ~ejabberd/.ejabberd-modules, where ejabberd finds it. Also the
 AppArmor rules for ejabberd's profile (the module, and cloudauth as
 extauth_program).
EOF
finish cloudauth-ejabberd

# --- cloudauth-prosody ----------------------------------------------------------------
P=$WORK/cloudauth-prosody
install -d "$P/DEBIAN" "$P/usr/lib/prosody/modules"
install -m 0644 prosody/mod_auth_cloudauth.lua "$P/usr/lib/prosody/modules/"
doc_dir cloudauth-prosody
install -m 0644 prosody/README.md "$P/usr/share/doc/cloudauth-prosody/"
copyright cloudauth-prosody
changelog cloudauth-prosody
cat > "$P/DEBIAN/control" <<EOF
Package: cloudauth-prosody
Version: $DEBVERSION
Architecture: all
Maintainer: $MAINTAINER
Installed-Size: 0
Depends: prosody (>= 0.12)
Recommends: cloudauth
Section: net
Priority: optional
Homepage: $HOMEPAGE
Description: Prosody authentication against Nextcloud through cloudauth
 mod_auth_cloudauth (authentication = "cloudauth") asks a cloudauth in socket
 mode, over a unix socket or loopback TCP, without blocking Prosody: users
 log in with their Nextcloud password or a token.
EOF
finish cloudauth-prosody

say "packages in $OUT (version $DEBVERSION, $ARCH) after $(( $(date +%s) - t0 )) s"
