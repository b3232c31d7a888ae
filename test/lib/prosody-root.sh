# A throwaway Prosody for the end-to-end tests (bash; source it after
# common.sh): the host's (Debian 12's 0.12), or that of a cached Debian root
# (test/lib/debian-root.sh's version matrix) entered with chroot, whose
# network is the host's loopback: it reaches cloudauth on 127.0.0.1 and the
# tests reach it there. R names the root's directory; empty means the host's.
#
#   prosody_runs [--host | --root NAME]
#                                the runs a script's arguments ask for, in
#                                RUNS: host, a root's name, or both host and
#                                trixie (none given)
#   prosody_root NAME WORK       unpack root NAME (made once, then cached)
#                                into WORK/root; sets R. Needs root.
#   prosody_prepare WORK         a fresh data directory and the config the
#                                caller's `prosody_config DIR MODULE_DIR`
#                                prints (DIR and MODULE_DIR as Prosody sees
#                                them); sets P (the directory as the host
#                                sees it); its debug log is $P/prosody.log
#   prosody_launch WORK          start it in the background, its output
#                                appended to WORK/prosody.stdout; sets
#                                PROSODY_PID (again after a restart)
#   prosody_listening PORT WORK  wait (10 s) until it listens on
#                                127.0.0.1:PORT, else die_setup with the tails
#   prosody_version              its Debian package's version

prosody_runs() {
    case ${1:-} in
        --host) RUNS=(host) ;;
        --root) RUNS=("${2:?--root NAME}") ;;
        "") RUNS=(host trixie) ;;
        *) die_setup "usage: $0 [--host | --root NAME]" ;;
    esac
}

prosody_root() {
    local name=$1 recipe
    . "$E2E_LIB/debian-root.sh"
    [ "$(id -u)" = 0 ] || die_setup "--root needs root (chroot, mount)"
    root_recipe "$name" >/dev/null || die_setup "no root recipe $name"
    mapfile -t recipe < <(root_recipe "$name")
    root_tar "$name" "${recipe[@]:0:2}" "$2/mmdebstrap.log" "${recipe[@]:2}" \
        || die_setup "root $name: mmdebstrap failed"
    R="$2/root"
    root_unpack "$ROOT_TAR" "$R" || die_setup "cannot unpack $ROOT_TAR"
}

prosody_prepare() {
    local work=$1
    if [ -z "${R:-}" ]; then
        command -v prosody >/dev/null || die_setup "prosody is not installed (Debian package prosody)"
        P="$work/prosody"
        rm -rf "$P" && mkdir -p "$P/data"
        prosody_config "$P" "$ROOT/prosody" > "$P/prosody.cfg.lua"
    else
        # A test may start several Prosodys one after another in one root.
        rm -rf "$R/tmp/src/prosody" "$R/tmp/prosody"
        mkdir -p "$R/tmp/src" && cp -r "$ROOT/prosody" "$R/tmp/src/"
        chroot "$R" install -d -o prosody -g prosody /tmp/prosody /tmp/prosody/data
        prosody_config /tmp/prosody /tmp/src/prosody > "$R/tmp/prosody/prosody.cfg.lua"
        chroot "$R" chown -R prosody:prosody /tmp/prosody
        P="$R/tmp/prosody"
    fi
}

prosody_launch() {
    if [ -z "${R:-}" ]; then
        prosody -F --config "$P/prosody.cfg.lua" >> "$1/prosody.stdout" 2>&1 &
    else
        chroot --userspec=prosody:prosody "$R" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp/prosody \
            prosody -F --config /tmp/prosody/prosody.cfg.lua >> "$1/prosody.stdout" 2>&1 &
    fi
    PROSODY_PID=$!
}

prosody_listening() {
    wait_until 10 port_listens "$1" || {
        tail -n 30 "$2/prosody.stdout" "$P/prosody.log" 2>/dev/null | sed 's/^/#   /'
        die_setup "prosody did not listen on 127.0.0.1:$1"
    }
}

prosody_version() { ${R:+chroot "$R"} dpkg-query -W -f '${Version}' prosody; }
