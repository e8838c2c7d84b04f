//! The consent page's sessions and its limit on failed links, in memory: a session is the
//! invitations a browser opened (a cookie names it), its CSRF token, and the photos it was
//! shown (each recorded once). Nothing here decides what a session may see: every request asks
//! the catalog again (`domain::portal`). A restart forgets every session; the links still open
//! a new one.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A session ends this long after its last request.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// And this long after it began, whatever happens.
pub const MAX_AGE: Duration = Duration::from_secs(8 * 3600);
/// At most this many sessions are held; the one idle longest goes first.
pub const MAX_SESSIONS: usize = 10_000;
/// Invitations one session may hold (a family with several children, plus slack).
pub const MAX_INVITATIONS: usize = 20;

/// Failed links one client may try per [`WINDOW`] before it gets 429.
pub const MAX_FAILURES: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(10 * 60);
/// Clients whose failures are counted at once, at most (the oldest window goes first).
const MAX_CLIENTS: usize = 100_000;

/// A random token for a cookie or a form (256 bits, base64url).
pub fn random_token() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::crypto::random_bytes::<32>())
}

#[derive(Debug, Clone)]
pub struct Session {
    pub invitations: Vec<i64>,
    pub csrf: String,
    /// Photos whose preview this session was shown and recorded for.
    pub previewed: HashSet<i64>,
    began: Instant,
    last: Instant,
}

#[derive(Default)]
pub struct Sessions {
    by_id: HashMap<String, Session>,
}

impl Sessions {
    /// A new session holding `invitation`, and the invitations of the session `id` if it is
    /// alive (a parent opening the link of a second child keeps the first); returns the new
    /// session's id. The id always changes when a link is opened, and the old one ends: a
    /// session id planted in a browser beforehand (session fixation) never comes to hold the
    /// invitation opened in it.
    pub fn open(&mut self, id: Option<&str>, invitation: i64, now: Instant) -> String {
        let mut carried = Vec::new();
        if let Some(id) = id {
            if self.get(id, now).is_some() {
                if let Some(old) = self.by_id.remove(id) {
                    carried = old.invitations;
                }
            }
        }
        carried.retain(|i| *i != invitation);
        carried.push(invitation);
        if carried.len() > MAX_INVITATIONS {
            carried.drain(..carried.len() - MAX_INVITATIONS);
        }
        if self.by_id.len() >= MAX_SESSIONS {
            self.by_id.retain(|_, s| alive(s, now));
            if self.by_id.len() >= MAX_SESSIONS {
                if let Some(oldest) = self
                    .by_id
                    .iter()
                    .min_by_key(|(_, s)| s.last)
                    .map(|(k, _)| k.clone())
                {
                    self.by_id.remove(&oldest);
                }
            }
        }
        let id = random_token();
        self.by_id.insert(
            id.clone(),
            Session {
                invitations: carried,
                csrf: random_token(),
                previewed: HashSet::new(),
                began: now,
                last: now,
            },
        );
        id
    }

    /// The live session `id`, its idle time reset; an expired one is removed.
    pub fn get(&mut self, id: &str, now: Instant) -> Option<&mut Session> {
        let ok = self.by_id.get(id).is_some_and(|s| alive(s, now));
        if !ok {
            self.by_id.remove(id);
            return None;
        }
        let s = self.by_id.get_mut(id)?;
        s.last = now;
        Some(s)
    }

    /// End a session (every invitation it held is no longer open).
    pub fn end(&mut self, id: &str) {
        self.by_id.remove(id);
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

fn alive(s: &Session, now: Instant) -> bool {
    now.duration_since(s.last) < IDLE && now.duration_since(s.began) < MAX_AGE
}

/// Failed links per client, in fixed windows.
#[derive(Default)]
pub struct Limiter {
    by_client: HashMap<IpAddr, (Instant, u32)>,
}

impl Limiter {
    /// Whether `client` may try a link now (fewer than [`MAX_FAILURES`] in its window).
    pub fn allows(&mut self, client: IpAddr, now: Instant) -> bool {
        match self.by_client.get(&client) {
            Some((since, n)) if now.duration_since(*since) < WINDOW => *n < MAX_FAILURES,
            _ => true,
        }
    }

    /// Count a failed link of `client`.
    pub fn failed(&mut self, client: IpAddr, now: Instant) {
        if self.by_client.len() >= MAX_CLIENTS {
            self.by_client
                .retain(|_, (since, _)| now.duration_since(*since) < WINDOW);
            if self.by_client.len() >= MAX_CLIENTS {
                if let Some(oldest) = self
                    .by_client
                    .iter()
                    .min_by_key(|(_, (since, _))| *since)
                    .map(|(k, _)| *k)
                {
                    self.by_client.remove(&oldest);
                }
            }
        }
        let e = self.by_client.entry(client).or_insert((now, 0));
        if now.duration_since(e.0) >= WINDOW {
            *e = (now, 0);
        }
        e.1 = e.1.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_hold_invitations_and_end_when_idle_or_old() {
        let mut s = Sessions::default();
        let t0 = Instant::now();
        let first = s.open(None, 1, t0);
        let a = s.open(Some(&first), 2, t0);
        assert_ne!(a, first, "opening a link gives a new session id");
        assert!(s.get(&first, t0).is_none(), "and ends the old one");
        assert_eq!(
            s.get(&a, t0).unwrap().invitations,
            [1, 2],
            "keeping its links"
        );
        let b = s.open(Some("forged"), 3, t0);
        assert_ne!(b, "forged", "an unknown id is never adopted");
        assert_eq!(s.get(&b, t0).unwrap().invitations, [3]);
        let csrf_a = s.get(&a, t0).unwrap().csrf.clone();
        assert_ne!(csrf_a, s.get(&b, t0).unwrap().csrf);
        // idle: gone
        assert!(s.get(&a, t0 + IDLE).is_none());
        // active, but older than MAX_AGE: gone
        let c = s.open(None, 4, t0);
        let mut t = t0;
        while t < t0 + MAX_AGE - IDLE {
            t += IDLE / 2;
            assert!(s.get(&c, t).is_some());
        }
        assert!(s.get(&c, t0 + MAX_AGE).is_none());
    }

    #[test]
    fn a_session_holds_a_bounded_number_of_invitations() {
        let mut s = Sessions::default();
        let t0 = Instant::now();
        let mut a = s.open(None, 0, t0);
        for i in 1..100 {
            a = s.open(Some(&a), i, t0);
        }
        assert_eq!(s.len(), 1, "old sessions ended");
        let held = &s.get(&a, t0).unwrap().invitations;
        assert_eq!(held.len(), MAX_INVITATIONS);
        assert_eq!(*held.last().unwrap(), 99, "the newest link is kept");
    }

    #[test]
    fn failures_are_limited_per_client_and_window() {
        let mut l = Limiter::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert!(l.allows(a, t0));
            l.failed(a, t0);
        }
        assert!(!l.allows(a, t0));
        assert!(l.allows(b, t0), "another client is not held up");
        assert!(l.allows(a, t0 + WINDOW), "the next window starts afresh");
    }
}
