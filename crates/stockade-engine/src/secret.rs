//! The installation's id secret. A keyed reservation's id is derived from its key (so that
//! a retry names the same reservation on every node and after every restart) and from
//! this secret, so that nobody who lacks the secret can compute a shop's reservation ids
//! from keys such as `cart-1`. An id then works as a capability: knowing it is what lets
//! a reader see a reservation's lines, or a channel resolve it.
//!
//! The embedded store keeps the secret beside the log (`stockade.secret`, created on first
//! start, readable by the owner only). Nodes that share one event store must share one
//! secret: set it in the configuration instead. Changing or losing the secret changes the
//! ids of new keyed reservations only: a retry of a request made under the old secret
//! still finds its events by their ids (derived from the key alone) and gets its original
//! answer, with the old reservation id.

use std::path::Path;

use uuid::Uuid;

use crate::error::Error;
use crate::idempotency::KeyScope;

/// Namespace the secret is hashed into; fixed forever, like the key namespace.
const SECRET_NAMESPACE: Uuid = Uuid::from_u128(0x2c4e_7a1f_93b8_4d6e_a5c0_18f2_6b9d_3e47);

/// Shortest secret accepted, in characters.
pub const MIN_SECRET_CHARS: usize = 32;

/// A per-installation secret. Its text is never kept: only the namespace derived from it.
#[derive(Clone, PartialEq, Eq)]
pub struct IdSecret {
    namespace: Uuid,
}

impl std::fmt::Debug for IdSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdSecret(..)")
    }
}

impl IdSecret {
    /// The file the embedded store keeps the secret in, inside the data directory.
    pub const FILE: &'static str = "stockade.secret";

    /// A secret from configuration: at least 32 printable ASCII characters.
    pub fn from_text(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        if text.chars().count() < MIN_SECRET_CHARS || !text.chars().all(|c| c.is_ascii_graphic()) {
            return Err(Error::Invalid(format!(
                "an id secret must be at least {MIN_SECRET_CHARS} printable ASCII characters without spaces"
            )));
        }
        Ok(Self {
            namespace: Uuid::new_v5(&SECRET_NAMESPACE, text.as_bytes()),
        })
    }

    /// A fresh random secret, as text (256 bits from the OS generator, in hex).
    pub fn generate_text() -> String {
        format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
    }

    /// The secret in `dir`, created (owner-only) if there is none yet.
    pub fn load_or_create(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(Self::FILE);
        let unreadable = |e: std::io::Error| {
            Error::Unavailable(format!("read the id secret {}: {e}", path.display()))
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => return Self::from_text(&text),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(unreadable(e)),
            Err(_) => {}
        }
        let text = Self::generate_text();
        match stockade_store::files::create_private(&path, format!("{text}\n").as_bytes()) {
            Ok(()) => Self::from_text(&text),
            // Another process created it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::from_text(&std::fs::read_to_string(&path).map_err(unreadable)?)
            }
            Err(e) => Err(Error::Unavailable(format!(
                "create the id secret {}: {e}",
                path.display()
            ))),
        }
    }

    /// The id of the reservation a keyed request under `scope` makes.
    pub(crate) fn reservation_id(&self, scope: &KeyScope) -> Uuid {
        scope.derive_in(&self.namespace, "reservation")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_depend_on_the_secret_and_the_key_and_nothing_else() {
        let scope = KeyScope::new(None, "cart-1").expect("key");
        let a = IdSecret::from_text(&"a".repeat(32)).expect("secret");
        let b = IdSecret::from_text(&"b".repeat(32)).expect("secret");
        assert_eq!(a.reservation_id(&scope), a.clone().reservation_id(&scope));
        assert_ne!(a.reservation_id(&scope), b.reservation_id(&scope));
        assert_ne!(a.reservation_id(&scope), scope.derive("reservation"));
    }

    #[test]
    fn short_or_spaced_secrets_are_refused() {
        assert!(IdSecret::from_text("short").is_err());
        assert!(IdSecret::from_text(&format!("{} x", "a".repeat(40))).is_err());
        assert!(IdSecret::from_text(&IdSecret::generate_text()).is_ok());
    }

    #[test]
    fn a_created_secret_is_read_back_and_private() {
        let dir = tempfile::tempdir().expect("dir");
        let first = IdSecret::load_or_create(dir.path()).expect("create");
        let again = IdSecret::load_or_create(dir.path()).expect("load");
        assert_eq!(first, again);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(IdSecret::FILE))
                .expect("file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
