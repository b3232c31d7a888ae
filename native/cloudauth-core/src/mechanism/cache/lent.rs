//! Entries that live in a store the core cannot reach itself (ejabberd's
//! Mnesia, from inside a NIF): the caller lends each user's row before a
//! check, and every row the cache's rules decide to write, or to drop, is
//! handed to a sink that writes (or deletes) it there. The rules (TTLs, bcrypt, what to write when)
//! stay those of [`super::PasswordCache`]; this store only carries rows.
//!
//! Between a lend and the check, the row is kept in memory under the JID, so
//! that the lookup, the bcrypt verification and the writes of one check see
//! one row; the next lend for that JID replaces it with the stored one.

use super::store::{CacheEntry, CacheStore, MemoryStore, StoreError};

/// Receives each row to write, with its JID; `None`: the row is to be deleted.
pub type RowSink = Box<dyn Fn(&str, Option<&CacheEntry>) + Send + Sync>;

/// Rows lent by the caller, kept as the memory store keeps them; writes
/// also go to a [`RowSink`].
pub struct LentStore {
    rows: MemoryStore,
    sink: RowSink,
}

impl LentStore {
    /// A store whose writes go to `sink`.
    pub fn new(sink: RowSink) -> Self {
        LentStore {
            rows: MemoryStore::default(),
            sink,
        }
    }

    /// The row the shared store holds for `jid` now (`None`: no row).
    pub fn lend(&self, jid: &str, row: Option<CacheEntry>) {
        // Only a poisoned lock fails here; the lookup that follows reports it.
        let _ = self.rows.put(jid, row);
    }
}

impl CacheStore for LentStore {
    fn get(&self, jid: &str) -> Result<Option<CacheEntry>, StoreError> {
        self.rows.get(jid)
    }

    fn record_verified(&self, jid: &str, pwhash: &str, now: u64) -> Result<(), StoreError> {
        let row = self.rows.verified(jid, pwhash, now)?;
        (self.sink)(jid, Some(&row));
        Ok(())
    }

    fn record_query(&self, jid: &str, now: u64) -> Result<(), StoreError> {
        if let Some(row) = self.rows.queried(jid, now)? {
            (self.sink)(jid, Some(&row));
        }
        Ok(())
    }

    /// Only the rows lent now: this store is used inside ejabberd, whose
    /// users belong to its configured vhosts, so no client can spread one
    /// user over invented domain names (the bound on entries per user is
    /// for the port protocols, which pass the domain a client typed).
    fn user_entries(&self, user: &str) -> Result<Vec<(String, u64)>, StoreError> {
        self.rows.user_entries(user)
    }

    /// Drops the row here and in the shared store: a password the backend
    /// refused (or `forget`) must not come back with the next lend, on this
    /// node or another.
    fn remove(&self, jid: &str) -> Result<(), StoreError> {
        self.rows.remove(jid)?;
        (self.sink)(jid, None);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;
    use crate::cache::{CacheTtls, Lookup, PasswordCache, Rules};

    type Written = Arc<Mutex<Vec<(String, Option<CacheEntry>)>>>;

    fn cache() -> (Arc<LentStore>, PasswordCache, Written) {
        let written: Written = Arc::default();
        let w = Arc::clone(&written);
        let store = Arc::new(LentStore::new(Box::new(move |jid, row| {
            w.lock().unwrap().push((jid.to_string(), row.cloned()));
        })));
        let ttls = CacheTtls {
            query: Duration::from_secs(3600),
            verification: Duration::from_secs(86_400),
            unreachable: Duration::from_secs(7 * 86_400),
        };
        let c = PasswordCache::new(Box::new(Arc::clone(&store)), ttls, 4).unwrap();
        (store, c, written)
    }

    #[test]
    fn a_verified_password_becomes_a_row_to_write_and_nothing_else_is_kept() {
        let (_store, c, written) = cache();
        // A space and `!` are outside bcrypt's alphabet: the password can
        // appear in the row only if it was written there ("pw" appeared in
        // about one random salt in a hundred).
        let h = c.hash("open sesame!").unwrap();
        c.record_verified("a@x", "open sesame!", &h, 100);
        let w = written.lock().unwrap().clone();
        assert_eq!(w.len(), 1);
        let w = [(
            w[0].0.clone(),
            w[0].1.clone().expect("a row, not a deletion"),
        )];
        assert_eq!(w[0].0, "a@x");
        assert_eq!(
            (w[0].1.firstauth, w[0].1.remoteauth, w[0].1.anyauth),
            (100, 100, 100)
        );
        assert!(w[0].1.pwhash.starts_with("$2"), "a bcrypt hash only");
        assert!(!w[0].1.pwhash.contains("open sesame!"));
    }

    #[test]
    fn a_row_from_another_node_admits_under_the_unchanged_rules() {
        // Node 1 stored the row; node 2 (another cache, no memory of it) gets it lent.
        let (_s1, c1, written) = cache();
        let h = c1.hash("pw").unwrap();
        c1.record_verified("a@x", "pw", &h, 1000);
        let row = written.lock().unwrap()[0].1.clone().unwrap();

        let (s2, c2, written2) = cache();
        assert_eq!(
            c2.lookup("a@x", "pw", 1001, Rules::Normal),
            Lookup::Miss,
            "nothing lent"
        );
        s2.lend("a@x", Some(row.clone()));
        let Lookup::Verify { pwhash } = c2.lookup("a@x", "pw", 1001, Rules::Normal) else {
            panic!("a fresh lent row is verified by bcrypt");
        };
        assert!(c2.verify_slow("a@x", "pw", &pwhash, 1001));
        let hit = written2.lock().unwrap().last().unwrap().1.clone();
        assert_eq!(hit.map(|r| r.anyauth), Some(1001));
        assert!(!c2.verify_slow("a@x", "wrong", &pwhash, 1002));

        // Two days later only the outage rules admit it, and only within a week.
        s2.lend("a@x", Some(row.clone()));
        let later = 1000 + 2 * 86_400;
        assert_eq!(c2.lookup("a@x", "pw", later, Rules::Normal), Lookup::Miss);
        assert_ne!(
            c2.lookup("a@x", "pw", later, Rules::Unreachable),
            Lookup::Miss
        );
        let too_late = 1000 + 8 * 86_400;
        assert_eq!(
            c2.lookup("a@x", "pw", too_late, Rules::Unreachable),
            Lookup::Miss
        );

        // A lend of "no row" forgets the entry.
        s2.lend("a@x", None);
        assert_eq!(
            c2.lookup("a@x", "pw", 1001, Rules::Unreachable),
            Lookup::Miss
        );
    }

    #[test]
    fn first_authentication_time_is_kept_across_verifications() {
        let (s, c, written) = cache();
        s.lend(
            "a@x",
            Some(CacheEntry {
                pwhash: "$2b$04$old".into(),
                firstauth: 5,
                remoteauth: 50,
                anyauth: 60,
            }),
        );
        c.record_verified("a@x", "pw", "$2b$04$new", 70);
        let w = written.lock().unwrap().last().unwrap().1.clone().unwrap();
        assert_eq!((w.firstauth, w.remoteauth, w.anyauth), (5, 70, 70));
    }

    #[test]
    fn a_dropped_row_is_deleted_in_the_shared_store_too() {
        // A refused password (or forget) drops the row: without a deletion
        // in Mnesia the next lend would bring it back on every node.
        let (s, c, written) = cache();
        s.lend(
            "a@x",
            Some(CacheEntry {
                pwhash: "$2b$04$old".into(),
                firstauth: 5,
                remoteauth: 50,
                anyauth: 60,
            }),
        );
        c.remove("a@x");
        assert_eq!(
            written.lock().unwrap().last().cloned(),
            Some(("a@x".to_string(), None))
        );
        assert_eq!(c.lookup("a@x", "pw", 61, Rules::Unreachable), Lookup::Miss);
    }
}
