#!/bin/bash
# End to end, from the Debian packages, for Debian 13 (trixie): ejabberd 24.12
# on Erlang/OTP 27, Prosody 13. The same checks as for Debian 12
# (test/e2e/packages.sh): packages built for the release (beams by its erlc),
# installed into a clean root, ejabberd in the VM and through extauth, the
# root booted with cloudauth.service, Prosody with the installed module.
exec env CLOUDAUTH_PACKAGES_SUITE=trixie bash "$(dirname "$0")/packages.sh"
