//! Settings whose value is one of a few words, as types: each variant's
//! word is written once, in its type's [`Choice::WORDS`], which the
//! schema offers as the setting's choices; reading a value is
//! [`Choice::from_word`] (`Values::choice`), never a string match with a
//! fallback arm. The variant a setting takes when not given is written once
//! too, as [`Choice::DEFAULT`]: the schema's default is its word.

/// A setting's words and the variants they stand for.
pub trait Choice: Copy + Eq + 'static {
    /// Every variant, in the order of [`Choice::WORDS`].
    const ALL: &'static [Self];
    /// Each variant's word (the schema's choices, in the order help lists them).
    const WORDS: &'static [&'static str];
    /// Where the setting's default stands in [`Choice::ALL`] and
    /// [`Choice::WORDS`]: the schema's default is [`Choice::DEFAULT_WORD`]
    /// and a reader falls back to [`Choice::DEFAULT_VARIANT`], one value
    /// (an index out of range fails the build, not a run).
    const DEFAULT: usize;
    /// The default's word, as the schema writes it.
    const DEFAULT_WORD: &'static str = Self::WORDS[Self::DEFAULT];
    /// The default's variant.
    const DEFAULT_VARIANT: Self = Self::ALL[Self::DEFAULT];

    /// The variant `word` names.
    fn from_word(word: &str) -> Option<Self> {
        let i = Self::WORDS.iter().position(|w| *w == word)?;
        Self::ALL.get(i).copied()
    }

    /// The word naming this variant.
    fn word(self) -> &'static str {
        Self::ALL
            .iter()
            .position(|c| *c == self)
            .and_then(|i| Self::WORDS.get(i))
            .copied()
            .unwrap_or_default()
    }
}

/// Where cached passwords live (`cache-storage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStorage {
    /// No cache.
    None,
    /// Process memory (in ejabberd: the node's).
    Memory,
    /// The `authcache` table of the state database.
    Db,
    /// A Mnesia table of ejabberd's cluster (in the VM only): the NIF gets
    /// each user's row with the request and hands back the rows to write.
    Mnesia,
}

impl Choice for CacheStorage {
    const ALL: &'static [Self] = &[
        CacheStorage::None,
        CacheStorage::Memory,
        CacheStorage::Db,
        CacheStorage::Mnesia,
    ];
    const WORDS: &'static [&'static str] = &["none", "memory", "db", "mnesia"];
    /// No cache unless asked for.
    const DEFAULT: usize = 0;
}

/// What to answer when the backend cannot say yes or no (`on-backend-trouble`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TroublePolicy {
    /// Answer something ejabberd takes neither as yes nor as no: the request
    /// fails and nothing is cached (ejabberd's auth cache would otherwise
    /// remember the user as non-existent after an outage).
    TempFail,
    /// Answer "no", like xcauth.
    Fail,
}

impl Choice for TroublePolicy {
    const ALL: &'static [Self] = &[TroublePolicy::TempFail, TroublePolicy::Fail];
    const WORDS: &'static [&'static str] = &["tempfail", "fail"];
    /// "Cannot tell" is not "no" unless asked for.
    const DEFAULT: usize = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<C: Choice + std::fmt::Debug>() {
        assert_eq!(C::ALL.len(), C::WORDS.len(), "a word for each variant");
        for c in C::ALL {
            assert_eq!(C::from_word(c.word()), Some(*c), "{c:?}");
        }
        assert_eq!(C::from_word("nonsense"), None);
    }

    #[test]
    fn words_and_variants_match() {
        round_trip::<CacheStorage>();
        round_trip::<TroublePolicy>();
        assert_eq!(CacheStorage::Db.word(), "db");
        assert_eq!(TroublePolicy::from_word("fail"), Some(TroublePolicy::Fail));
        assert_eq!(CacheStorage::DEFAULT_VARIANT, CacheStorage::None);
        assert_eq!(TroublePolicy::DEFAULT_WORD, "tempfail");
    }
}
