//! One-shot checks (`-A`, `-I`, `-R`): print the answer, exit 0 yes, 1 no,
//! 2 backend trouble.

use cloudauth_core::{Authenticator, Verdict};

use crate::roster_sync::RosterSync;

/// Exit code and printed line for a verdict.
fn outcome(v: &Verdict) -> (i32, String) {
    match v {
        Verdict::Yes => (0, "yes".into()),
        Verdict::No => (1, "no".into()),
        Verdict::Trouble(e) => (2, format!("backend trouble: {e}")),
    }
}

/// `-A USER DOMAIN PASSWORD`.
pub async fn auth(a: &Authenticator, user: &str, domain: &str, password: &str) -> i32 {
    let d = a.auth(user, domain, password).await;
    let (code, text) = outcome(&d.verdict);
    let reason = d.reason.map(|r| format!(" ({r})")).unwrap_or_default();
    println!("{text} via {}{reason}", d.path.word());
    code
}

/// `-I USER DOMAIN`.
pub async fn is_user(a: &Authenticator, user: &str, domain: &str) -> i32 {
    let d = a.is_user(user, domain).await;
    let (code, text) = outcome(&d.verdict);
    println!("{text}");
    code
}

/// `-R USER DOMAIN`: the shared roster as pretty JSON; with `--ejabberdctl`,
/// also a sync, run to its end.
pub async fn roster(a: &Authenticator, sync: Option<&RosterSync>, user: &str, domain: &str) -> i32 {
    match a.shared_roster(user, domain).await {
        Ok(r) => match serde_json::to_string_pretty(&r) {
            Ok(text) => {
                println!("{text}");
                let Some(sync) = sync else { return 0 };
                match sync.sync(a, user, domain).await {
                    Ok(s) if s.unchanged => {
                        println!("sync: unchanged since the last sync");
                        0
                    }
                    Ok(s) => {
                        println!(
                            "sync: {} changes, {} failed, in {} ms",
                            s.actions,
                            s.failed,
                            s.elapsed.as_millis()
                        );
                        i32::from(s.failed > 0) * 2
                    }
                    Err(e) => {
                        println!("sync failed: {e}");
                        2
                    }
                }
            }
            Err(e) => {
                println!("backend trouble: cannot print roster: {e}");
                2
            }
        },
        Err(e) => {
            println!("backend trouble: {e}");
            2
        }
    }
}
