//! The asynchronous reply pattern: a NIF call records the caller and its
//! reference, starts the work on the NIF's runtime and returns at once; the
//! caller later receives `{Ref, Result}`.
//!
//! The work runs in a task of its own whose handle is awaited with a budget,
//! so a panic or an overrun still produces a reply (`{Ref, {error, Why}}`)
//! instead of leaving the caller to its own deadline, and no reply is sent
//! after the budget (the Erlang side waits a little longer than that).

use std::future::Future;
use std::time::Duration;

use rustler::{Atom, Encoder, Env, LocalPid, NifResult, OwnedEnv, Term};
use tokio::task::JoinError;

use crate::atoms;
use crate::runtime::runtime;

/// What a panic carried, as text.
fn panic_text(e: JoinError) -> String {
    if !e.is_panic() {
        return "task cancelled".into();
    }
    let payload = e.into_panic();
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into());
    format!("panic in the NIF: {text}")
}

/// Runs `work` on the runtime and sends `{reply_ref, Result}` to the calling
/// process within `budget`. Returns `ok` at once, or `{error, Why}` when the
/// runtime cannot be started.
pub fn spawn_reply<W, T>(
    env: Env<'_>,
    reply_ref: Term<'_>,
    budget: Duration,
    work: W,
) -> NifResult<Atom>
where
    W: Future<Output = T> + Send + 'static,
    T: Encoder + Send + 'static,
{
    let rt = runtime().map_err(|why| rustler::Error::Term(Box::new(why)))?;
    let pid: LocalPid = env.pid();
    let mut msg_env = OwnedEnv::new();
    let saved_ref = msg_env.save(reply_ref);
    rt.spawn(async move {
        let outcome = match tokio::time::timeout(budget, tokio::spawn(work)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(join)) => Err(panic_text(join)),
            Err(_) => Err(format!("no result within {budget:?}")),
        };
        // A runtime thread, not a scheduler: send_and_clear is allowed here.
        // Sending to a process that has gone away fails; nothing to do then.
        let _ = msg_env.send_and_clear(&pid, |env| {
            let r = saved_ref.load(env);
            match outcome {
                Ok(value) => (r, value).encode(env),
                Err(why) => (r, (atoms::error(), why)).encode(env),
            }
        });
    });
    Ok(atoms::ok())
}
