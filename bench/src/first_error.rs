//! The first failure of a load run, kept for the report (later ones are only counted).

use std::sync::Mutex;

use serde_json::Value;

#[derive(Default)]
pub struct FirstError(Mutex<Option<Value>>);

impl FirstError {
    /// Keeps the failure `describe` gives when none is kept yet (so it is built once); says
    /// whether it did.
    pub fn record(&self, describe: impl FnOnce() -> Value) -> bool {
        let mut slot = self.0.lock().expect("poisoned");
        let first = slot.is_none();
        if first {
            *slot = Some(describe());
        }
        first
    }

    pub fn take(&self) -> Option<Value> {
        self.0.lock().expect("poisoned").take()
    }
}

/// The first `n` characters of a failure's body: enough to tell what went wrong.
pub fn excerpt(body: &str, n: usize) -> String {
    body.chars().take(n).collect()
}
