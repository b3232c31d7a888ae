//! One-shot checks (`-A`, `-I`, `-R`): print the answer, exit 0 yes, 1 no,
//! 2 backend trouble.

use cloudauth_core::{Authenticator, Verdict};

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

/// `-R USER DOMAIN`: the shared roster as pretty JSON.
pub async fn roster(a: &Authenticator, user: &str, domain: &str) -> i32 {
    let Some(settings) = a.settings().resolve(domain) else {
        println!("no: domain not served");
        return 1;
    };
    let auth_domain = settings.auth_domain(domain);
    match a
        .backend()
        .shared_roster(&settings, user, auth_domain)
        .await
    {
        Ok(r) => match serde_json::to_string_pretty(&r) {
            Ok(text) => {
                println!("{text}");
                0
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
