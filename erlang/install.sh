#!/bin/sh
# Installs ejabberd_auth_cloud as an ejabberd contributed module:
#   DEST/ejabberd_auth_cloud/{ejabberd_auth_cloud.spec, ebin/*.beam + .app, priv/ejabberd_auth_cloud_nif.so}
# DEST defaults to the ejabberd user's ~/.ejabberd-modules, which is where
# ejabberd looks unless CONTRIB_MODULES_PATH says otherwise.
#
# The beams are compiled here, by the erlc on PATH (run this on the machine,
# or in the root, whose Erlang/OTP runs ejabberd), against the installed
# ejabberd's headers (its ejabberd_commands record, its logger macros) and
# behaviours. The NIF is built by cargo (cargo build --release --locked -p
# cloud_nif), unless NIF=FILE names one built before: it uses NIF API 2.15,
# which Erlang/OTP 25 to 29 load (test/e2e/versions.sh checks 25, 27 and 29).
#
# Usage: erlang/install.sh [DEST]
# Environment: NIF (a prebuilt ejabberd_auth_cloud_nif.so), EJABBERD_LIB
# (ejabberd's lib dir, default /usr/lib/*/ejabberd-*), ERLC (default erlc),
# CARGO_TARGET_DIR (cargo's).
set -eu
cd "$(dirname "$0")/.."
if [ $# -ge 1 ]; then
    DEST=$1
else
    home=$(getent passwd ejabberd | cut -d: -f6)
    [ -n "$home" ] || { echo "install.sh: no ejabberd user; give DEST" >&2; exit 2; }
    DEST=$home/.ejabberd-modules
fi
ERLC=${ERLC:-erlc}
command -v "$ERLC" >/dev/null || { echo "install.sh: $ERLC not found (Debian: erlang-base)" >&2; exit 2; }
LIB=${EJABBERD_LIB:-}
if [ -z "$LIB" ]; then
    for d in /usr/lib/*/ejabberd-*/include/logger.hrl; do
        [ -f "$d" ] && LIB=$(dirname "$(dirname "$d")") && break
    done
fi
[ -n "$LIB" ] && [ -d "$LIB/include" ] || { echo "install.sh: ejabberd's lib dir not found: set EJABBERD_LIB" >&2; exit 2; }

if [ -n "${NIF:-}" ]; then
    [ -f "$NIF" ] || { echo "install.sh: NIF=$NIF: no such file" >&2; exit 2; }
    SO=$NIF
else
    cargo build --release --locked -p cloud_nif >&2
    SO=${CARGO_TARGET_DIR:-target}/release/libcloud_nif.so
fi

BUILD=$(mktemp -d)
trap 'rm -rf "$BUILD"' EXIT
"$ERLC" +debug_info -W -pa "$LIB/ebin" -I "$LIB/include" -o "$BUILD" erlang/*.erl >&2
# the .app: the .app.src with the modules compiled
erl -noshell -noinput -eval '
    [Src, Ebin] = init:get_plain_arguments(),
    {ok, [{application, App, Props}]} = file:consult(Src),
    Mods = lists:sort([list_to_atom(filename:basename(F, ".beam"))
                       || F <- filelib:wildcard(filename:join(Ebin, "*.beam"))]),
    ok = file:write_file(filename:join(Ebin, atom_to_list(App) ++ ".app"),
                         io_lib:format("~p.~n", [{application, App, Props ++ [{modules, Mods}]}])),
    halt().' -extra erlang/ejabberd_auth_cloud.app.src "$BUILD"

M=$DEST/ejabberd_auth_cloud
mkdir -p "$M/ebin" "$M/priv"
rm -f "$M"/ebin/*.beam
cp "$BUILD"/*.beam "$BUILD"/ejabberd_auth_cloud.app "$M/ebin/"
cp -L "$SO" "$M/priv/ejabberd_auth_cloud_nif.so"
cp erlang/ejabberd_auth_cloud.spec "$M/"
chmod -R a+rX "$M"
echo "installed $M (beams by $ERLC of Erlang/OTP $(erl -noshell -noinput -eval 'io:put_chars(erlang:system_info(otp_release)), halt().'), ejabberd headers from $LIB)"
