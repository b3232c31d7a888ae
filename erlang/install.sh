#!/bin/sh
# Installs ejabberd_auth_cloud as an ejabberd contributed module:
#   DEST/ejabberd_auth_cloud/{ejabberd_auth_cloud.spec, ebin/*.beam, priv/ejabberd_auth_cloud_nif.so}
# DEST defaults to the ejabberd user's ~/.ejabberd-modules, which is where
# ejabberd looks unless CONTRIB_MODULES_PATH says otherwise.
# Builds first (rebar3 compile: the Erlang modules and the Rust NIF).
# Usage: erlang/install.sh [DEST]
set -eu
cd "$(dirname "$0")/.."
if [ $# -ge 1 ]; then
    DEST=$1
else
    home=$(getent passwd ejabberd | cut -d: -f6)
    [ -n "$home" ] || { echo "install.sh: no ejabberd user; give DEST" >&2; exit 2; }
    DEST=$home/.ejabberd-modules
fi
rebar3 compile >&2
EBIN=_build/default/lib/ejabberd_auth_cloud/ebin
M=$DEST/ejabberd_auth_cloud
mkdir -p "$M/ebin" "$M/priv"
cp "$EBIN"/*.beam "$EBIN"/ejabberd_auth_cloud.app "$M/ebin/"
cp -L priv/ejabberd_auth_cloud_nif.so "$M/priv/"
cp erlang/ejabberd_auth_cloud.spec "$M/"
chmod -R a+rX "$M"
echo "installed $M"
