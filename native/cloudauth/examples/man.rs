//! Writes the man pages `cloudauth.1` and `cloudauth-token.1` from the
//! command line's definition: `src/cli.rs`, compiled in here as it is into
//! the binary, so the synopsis, every option with its values and default,
//! the subcommand and the exit codes are the ones `cloudauth` parses and
//! `--help` prints. Around them go the sections clap has no place for
//! (modes, configuration, signals, files).
//!
//! ```sh
//! cargo run --release --locked -p cloudauth --example man -- OUT_DIR [YYYY-MM-DD]
//! ```
//!
//! packaging/build-debs.sh runs it with the date of the last commit, so the
//! pages are reproducible.

#[allow(dead_code)]
#[path = "../src/cli.rs"]
mod cli;

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_mangen::roff::{bold, italic, roman, Inline, Roff};
use clap_mangen::Man;

const MANUAL: &str = "cloudauth";

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(out), date) = (args.next(), args.next()) else {
        eprintln!("usage: man OUT_DIR [YYYY-MM-DD]");
        std::process::exit(2);
    };
    let out = PathBuf::from(out);
    let date = date.unwrap_or_default();
    if let Err(e) = write_pages(&out, &date) {
        eprintln!("man: {}: {e}", out.display());
        std::process::exit(1);
    }
}

fn write_pages(out: &Path, date: &str) -> io::Result<()> {
    std::fs::create_dir_all(out)?;
    let mut cmd = cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let source = format!("cloudauth {}", cmd.get_version().unwrap_or_default());

    // cloudauth-token.1: the subcommand's own arguments; the settings it
    // also takes are cloudauth(1)'s.
    let token = cmd
        .find_subcommand("token")
        .expect("the token subcommand")
        .clone()
        .mut_args(|a| if a.is_global_set() { a.hide(true) } else { a });
    let man = Man::new(token)
        .title("CLOUDAUTH-TOKEN")
        .date(date)
        .source(&source)
        .manual(MANUAL);
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    section(&mut page, "DESCRIPTION", |r| {
        para(
            r,
            "Prints a token that logs USER@DOMAIN in instead of a password, in one of the \
                 token formats configured for DOMAIN (the first of its tokens setting unless \
                 --format names another): jsxc, the JSXC time-limited token signed with the \
                 domain's secret, or totp, a Prosody mod_auth_token one-time token.",
        );
        para(
            r,
            "The domain's settings are read as for a login: the command line, the \
                 configuration file, the per-domain file and the state database. Every option \
                 of cloudauth(1) is accepted here too, e.g. -c, --secret-file, --tokens.",
        );
    });
    man.render_options_section(&mut page)?;
    section(&mut page, "EXAMPLES", |r| {
        example(r, &["cloudauth token alice example.org --ttl 1d"]);
        example(
            r,
            &["cloudauth -c /dev/null --secret-file /etc/cloudauth/secret token alice example.org"],
        );
    });
    section(&mut page, "EXIT STATUS", |r| {
        para(
            r,
            "0 when the token was printed; 2 on a bad command line or configuration.",
        );
    });
    section(&mut page, "SEE ALSO", |r| {
        r.text([bold("cloudauth"), roman("(1)")]);
    });
    write(out, "cloudauth-token.1", &page)?;

    // cloudauth.1
    let man = Man::new(cmd)
        .title("CLOUDAUTH")
        .date(date)
        .source(&source)
        .manual(MANUAL);
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    section(&mut page, "DESCRIPTION", |r| {
        para(
            r,
            "cloudauth decides whether a user may log in to an XMPP or mail server with a \
                 password, and whether a user exists, by asking Nextcloud (through the JSXC \
                 app's API or Nextcloud's own OCS API) or a JSON login API, or by checking a \
                 token locally (JSXC time-limited tokens, Prosody mod_auth_token TOTP tokens). \
                 A password cache keeps users logged in while Nextcloud is down. It replaces \
                 xcauth (xmpp-cloud-auth): same options, same /etc/xcauth.conf, same state \
                 database.",
        );
        r.control("SS", ["Modes"]);
        tp(
            r,
            &[bold("-t "), italic("PROTO")],
            "serves one protocol on standard input and output \
            until it ends: ejabberd (extauth_program), generic (alias prosody: \
            auth:USER:DOMAIN:PASSWORD lines), saslauthd or postfix (tcp_table). Only answers \
            are written to standard output.",
        );
        tp(
            r,
            &[bold("--listen "), italic("PROTO=ADDR")],
            "socket mode: one process serves any \
            number of unix sockets and loopback TCP addresses, and the sockets systemd passes \
            in (cloudauth.service with the cloudauth-*.socket units, whose FileDescriptorName \
            names the protocol). Unix sockets are created with mode 0660.",
        );
        tp(
            r,
            &[bold("-A"), roman(", "), bold("-I"), roman(", "), bold("-R")],
            "one-shot \
            checks: a password, whether a user exists, a user's shared roster (with \
            --ejabberdctl also synchronised). The answer is printed; see EXIT STATUS.",
        );
        tp(
            r,
            &[bold("token")],
            "prints a token for a user: see cloudauth-token(1).",
        );
    });
    man.render_options_section(&mut page)?;
    man.render_subcommands_section(&mut page)?;
    section(&mut page, "CONFIGURATION", |r| {
        para(
            r,
            "Settings come from the command line, which beats the configuration file, \
                 which beats the defaults shown above. The configuration file (-c, default \
                 /etc/xcauth.conf if it exists) has xcauth's syntax, which is configargparse's: \
                 key=value, key: value or key value lines, bare flags, [a, b] lists, # comments \
                 (also after a value, after whitespace). Its keys are the long option names \
                 without the dashes; _ and - are alike.",
        );
        para(
            r,
            "Per XMPP domain, settings can also come from the -p file (domain secret url \
                 [authdomain] [key=value ...] lines) and from the domains and domain_settings \
                 tables of the state database (--db).",
        );
        para(
            r,
            "-A takes precedence over -I over -R over -t. -A, -I and -R log to standard \
                 error.",
        );
    });
    section(&mut page, "EXIT STATUS", |r| {
        let mut lines = cli::EXIT_STATUS.lines().peekable();
        while let Some(line) = lines.next() {
            let (code, text) = line.split_once("  ").unwrap_or((line, ""));
            let mut text = text.to_string();
            while let Some(more) = lines.next_if(|l| l.starts_with(' ')) {
                text.push(' ');
                text.push_str(more.trim());
            }
            tp(r, &[bold(code)], &text);
        }
    });
    section(&mut page, "SIGNALS", |r| {
        tp(
            r,
            &[bold("SIGTERM")],
            "socket mode: answers the requests already read, then exits.",
        );
        tp(
            r,
            &[bold("SIGHUP")],
            "reopens the log file (after logrotate moved it).",
        );
    });
    section(&mut page, "FILES", |r| {
        for (file, what) in [
            ("/etc/xcauth.conf", "the configuration file (readable by the user running cloudauth only: it may hold the secret)"),
            ("/var/log/xcauth/cloudauth.log", "the log (-l); never holds passwords, tokens or secrets"),
            ("/var/lib/xcauth/xcauth.sqlite3", "xcauth's state database (--db): per-domain settings, password cache, shared roster state, used one-time tokens"),
            ("/lib/systemd/system/cloudauth.service", "socket mode under systemd, with cloudauth-ejabberd.socket, cloudauth-prosody.socket, cloudauth-saslauthd.socket and cloudauth-postfix.socket"),
            ("/usr/share/doc/cloudauth/docs/admin/", "the admin's documentation: one page per server and per backend, the password cache, the cluster, troubleshooting; docs/reference/options.md lists every option"),
        ] {
            tp(r, &[italic(file)], what);
        }
    });
    section(&mut page, "EXAMPLES", |r| {
        para(r, "A one-shot password check:");
        example(r, &["cloudauth -A alice example.org 'her password'"]);
        para(
            r,
            "/etc/xcauth.conf (chmod 600, owned by the user running cloudauth):",
        );
        example(
            r,
            &[
                "url = https://cloud.example.org/index.php/apps/ojsxc/ajax/externalApi.php",
                "secret-file = /etc/cloudauth/secret",
            ],
        );
        para(r, "ejabberd.yml, with ejabberd running cloudauth itself:");
        example(
            r,
            &[
                "auth_method: external",
                "extauth_program: \"/usr/bin/cloudauth -t ejabberd -c /etc/xcauth.conf\"",
                "auth_use_cache: false",
            ],
        );
    });
    section(&mut page, "SEE ALSO", |r| {
        r.text([
            bold("cloudauth-token"),
            roman("(1), "),
            bold("cloudauth-connect"),
            roman("(1), "),
            bold("ejabberdctl"),
            roman("(8), "),
            bold("saslauthd"),
            roman("(8), "),
            bold("systemd.socket"),
            roman("(5)"),
        ]);
    });
    man.render_version_section(&mut page)?;
    write(out, "cloudauth.1", &page)
}

fn section(page: &mut Vec<u8>, title: &str, body: impl FnOnce(&mut Roff)) {
    let mut r = Roff::default();
    r.control("SH", [title]);
    body(&mut r);
    page.extend_from_slice(r.render().as_bytes());
}

fn para(r: &mut Roff, text: &str) {
    r.control("PP", []);
    r.text([roman(text)]);
}

/// A tagged paragraph: the tag, then its text indented.
fn tp(r: &mut Roff, tag: &[Inline], text: &str) {
    r.control("TP", []);
    r.text(tag.to_vec());
    r.text([roman(text)]);
}

/// Lines to type or to write into a file, unfilled and indented.
fn example(r: &mut Roff, lines: &[&str]) {
    r.control("PP", []);
    r.control("RS", ["4"]);
    r.control("nf", []);
    for line in lines {
        r.text([bold(*line)]);
    }
    r.control("fi", []);
    r.control("RE", []);
}

fn write(out: &Path, name: &str, page: &[u8]) -> io::Result<()> {
    let path = out.join(name);
    let mut f = std::fs::File::create(&path)?;
    f.write_all(page)?;
    println!("{}", path.display());
    Ok(())
}
