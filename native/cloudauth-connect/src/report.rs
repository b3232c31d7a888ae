//! Trouble reports on stderr (ejabberd passes them to its VM output): one
//! line when a kind of trouble starts, one when requests get through again.
//! Never any request content.

use std::fmt::Display;

use crate::relay::RelayError;
use crate::wire::{Reply, REPLY_NO};

/// Prefix of every line.
const NAME: &str = "cloudauth-connect";

/// Remembers the last trouble reported so that a down server does not
/// produce one line per login attempt.
#[derive(Debug)]
pub struct Report {
    target: String,
    answer: &'static str,
    last: Option<String>,
}

impl Report {
    /// Reports about `target`; failures are answered `on_trouble`.
    pub fn new(target: &impl Display, on_trouble: Reply) -> Self {
        Report {
            target: target.to_string(),
            answer: if on_trouble == REPLY_NO {
                "answering fail"
            } else {
                "answering tempfail"
            },
            last: None,
        }
    }

    /// A request failed; prints a line unless it is the same trouble as before.
    pub fn trouble(&mut self, e: &RelayError) {
        let text = e.to_string();
        if self.last.as_deref() != Some(text.as_str()) {
            eprintln!("{NAME}: {}: {text}; {}", self.target, self.answer);
            self.last = Some(text);
        }
    }

    /// A request got its reply; ends a trouble episode.
    pub fn relayed(&mut self) {
        if self.last.take().is_some() {
            eprintln!("{NAME}: {}: relaying again", self.target);
        }
    }
}

/// A one-line fatal message on stderr.
pub fn fatal(what: &impl Display) {
    eprintln!("{NAME}: {what}");
}
