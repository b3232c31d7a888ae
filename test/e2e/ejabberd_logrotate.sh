#!/bin/bash
# End to end: log rotation under a running extauth pool. ejabberd 23.01 runs
# `cloudauth -t ejabberd` (pool of 2) logging to a directory; `kill -HUP`
# (logrotate's postrotate, systemd's ExecReload) and `logrotate -f` with
# xcauth's logrotate directives (no postrotate: xcauth's WatchedFileHandler
# notices the new file by itself) must leave every process alive, and the
# next logins must land in the new file.
set -u
. "$(dirname "$0")/../lib/common.sh"

SECRET="e2e-secret-$$-$RANDOM"
W=$(workdir logrotate)
start_backend "$W" "$SECRET" "$STANDARD_USERS" || die_setup "test backend did not start"
write_secret "$W/secret" "$SECRET"
mkdir -p "$W/log"
LOG="$W/log/cloudauth.log"
PORT=$(free_port)
cat > "$W/extra.yml" <<YML
auth_method: external
extauth_program: "$BIN_DIR/cloudauth -c /dev/null -t ejabberd -u $BACKEND_URL --secret-file $W/secret -l $W/log"
extauth_pool_size: 2
auth_use_cache: false
YML
start_ejabberd "$W/ejabberd" "$PORT" "$W/extra.yml" || die_setup "ejabberd did not start"
D=localhost

pids() { pgrep -f -- "-l $W/log" | sort | tr '\n' ' '; }
# logged_within USER MS: a decision line for USER@localhost shows up in $LOG within MS
logged_within() {
    local i
    for i in $(seq $(( $2 / 50 ))); do
        grep -q "auth $1@$D: yes" "$LOG" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}
# Two logins so that both processes of the pool have started.
login "alice@$D" alice-pw "$PORT"; login "bob@$D" bob-pw "$PORT"
BEFORE=$(pids)
[ "$(echo "$BEFORE" | wc -w)" -ge 1 ] && ok "extauth processes running: $BEFORE" || die_setup "no cloudauth process found"

# SIGHUP: reopen, stay alive.
for p in $BEFORE; do kill -HUP "$p"; done
sleep 0.3
expect "SIGHUP: every cloudauth process is still alive" "$BEFORE" "$(pids)"
mv "$LOG" "$LOG.hup"
for p in $BEFORE; do kill -HUP "$p"; done
login "carol@$D" 'a: b c :d ' "$PORT"; expect "login after SIGHUP" 0 $?
logged_within carol 2000 && ok "after mv + SIGHUP the login is logged to the new file" \
    || not_ok "after mv + SIGHUP no line in the new log file"

# logrotate with xcauth's directives (create, no postrotate).
cat > "$W/logrotate.conf" <<CONF
$LOG {
        daily
        missingok
        rotate 14
        compress
        delaycompress
        notifempty
        create 660 $(id -un) $(id -gn)
        sharedscripts
        # Will detect log file changes
}
CONF
logrotate -f -s "$W/logrotate.state" "$W/logrotate.conf" 2> "$W/logrotate.err"
expect "logrotate -f ran" 0 $? "$(head -c 200 "$W/logrotate.err")"
[ -f "$LOG.1" ] && ok "logrotate moved the log to cloudauth.log.1" || not_ok "no rotated file: $(ls "$W/log")"
# The path is checked every 0.2 s; lines in that window still go to the
# rotated file (delaycompress keeps it as it is).
sleep 0.5
login "jürgen@$D" 'pässwörd-ü' "$PORT"; expect "login after logrotate" 0 $?
logged_within jürgen 2000 && ok "after logrotate the login is logged to the new cloudauth.log (no signal sent)" \
    || not_ok "after logrotate no line in the new cloudauth.log"
grep -q "jürgen@$D" "$LOG.1" && not_ok "the rotated file still gets lines" || ok "the rotated file gets no new lines"

# The file removed outright: recreated (checked every 0.2 s: lines in that
# window go to the removed file).
rm -f "$LOG"
sleep 0.5
login "alice@$D" alice-pw "$PORT"
logged_within alice 2000 && ok "after rm the log file is recreated" || not_ok "no log file after rm"
mode=$(stat -c %a "$LOG" 2>/dev/null)
expect "a log file cloudauth creates is not world-readable (0640)" 640 "$mode"
expect "every cloudauth process is still the same and alive" "$BEFORE" "$(pids)"
"$SANDBOX" status "$W/ejabberd" >/dev/null 2>&1; expect "ejabberd still running" 0 $?
finish
