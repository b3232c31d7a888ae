# Cached Debian roots for the end-to-end tests (bash; source it after
# common.sh). A root is made once by mmdebstrap from a recipe (suite,
# packages, apt sources) and kept as a tar in test/.work/roots/ under the
# hash of that recipe, for a week; the tests unpack a fresh copy each run.
# Needs root (mmdebstrap --mode=root, chroot, mount).
#
#   root_tar NAME SUITE INCLUDE LOG [--OPTION...] SOURCE...
#                                               make or reuse; sets ROOT_TAR (the tar)
#                                               and ROOT_BUILT_S (seconds the build
#                                               took, 0 when the cache had it)
#   root_unpack TAR DIR                         unpack, /etc/hosts, /proc mounted
#                                               (unmounted at exit)
#   root_recipe NAME                            SUITE INCLUDE [--OPTION...] SOURCE... of
#                                               the version matrix's roots, one a line
#                                               (bookworm-backports, trixie, sid)
#
# INCLUDE is mmdebstrap's comma-separated list; a package may name its
# release (ejabberd/bookworm-backports), but its dependencies then come from
# the suite: for a whole backported stack, --aptopt='APT::Default-Release
# "bookworm-backports"' (what apt -t does). --OPTIONs go to mmdebstrap.

ROOTS_DIR=$ROOT/test/.work/roots
DEBIAN_MIRROR=${CLOUDAUTH_DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY=${CLOUDAUTH_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}

root_recipe() {
    local m=$DEBIAN_MIRROR s=$DEBIAN_SECURITY
    case $1 in
        bookworm-backports) printf '%s\n' bookworm ejabberd,prosody,mawk \
            '--aptopt=APT::Default-Release "bookworm-backports"' \
            "deb $m bookworm main" "deb $m bookworm-updates main" \
            "deb $s bookworm-security main" "deb $m bookworm-backports main" ;;
        trixie) printf '%s\n' trixie ejabberd,prosody,mawk \
            "deb $m trixie main" "deb $m trixie-updates main" "deb $s trixie-security main" ;;
        # sid's Release files are valid for a week; a mirror snapshot may be older
        sid) printf '%s\n' sid ejabberd,prosody,mawk "deb [check-valid-until=no] $m sid main" ;;
        *) return 1 ;;
    esac
}

root_tar() {
    local name=$1 suite=$2 include=$3 log=$4 key cache t0 opts=()
    shift 4
    while [ $# -gt 0 ] && [ "${1#--}" != "$1" ]; do opts+=("$1"); shift; done
    key=$(printf '%s\n' mmdebstrap-apt "$suite" "$include" "${opts[@]}" "$@" | sha256sum | cut -c1-16)
    cache=$ROOTS_DIR/$name-$key.tar
    mkdir -p "$ROOTS_DIR"
    find "$ROOTS_DIR" -name '*.tar' -mtime +7 -delete
    ROOT_BUILT_S=0
    ROOT_TAR=$cache
    if [ ! -s "$cache" ]; then
        t0=$(date +%s)
        mmdebstrap --variant=apt --mode=root --format=tar --include="$include" \
            "${opts[@]}" "$suite" "$cache.tmp.$$" "$@" > "$log" 2>&1 || {
            rm -f "$cache.tmp.$$"
            tail -n 20 "$log" | sed 's/^/#   /'
            return 1
        }
        mv "$cache.tmp.$$" "$cache"
        ROOT_BUILT_S=$(( $(date +%s) - t0 ))
    fi
}

root_unpack() {
    local tar=$1 dir=$2
    mkdir -p "$dir" && tar -xf "$tar" -C "$dir" || return 1
    printf '127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n' > "$dir/etc/hosts"
    on_exit "! mountpoint -q '$dir/proc' || umount -l '$dir/proc'"
    mount -t proc proc "$dir/proc"
}
