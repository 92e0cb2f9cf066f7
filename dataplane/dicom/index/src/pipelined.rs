//! A transaction whose `BEGIN` and `COMMIT` travel with its statements. tokio-postgres's
//! `Transaction` waits for each of them, two of the five round trips a one-instance STOW made;
//! on two cores every round trip is a wake-up of both processes.

use deadpool_postgres::{Client, Object};

/// A pooled connection inside a transaction its user began by sending `BEGIN` ahead of the
/// first statements. Once the transaction has ended it goes back to the pool ([`Self::ended`]);
/// dropped before, on an error path or with a cancelled request, the connection is closed
/// instead, which rolls the transaction back: the pool never hands out a connection in the
/// middle of one.
pub(crate) struct PipelinedTransaction {
    conn: Option<Object>,
}

impl PipelinedTransaction {
    pub(crate) fn new(conn: Object) -> Self {
        Self { conn: Some(conn) }
    }

    pub(crate) fn client(&self) -> &Client {
        // Only `Drop` and the consuming methods take it.
        self.conn
            .as_ref()
            .expect("the connection is held until the transaction ends")
    }

    /// The statements sent ended the transaction (a `COMMIT`, or a `COMMIT` the server turned
    /// into a rollback after an error): the connection is idle again.
    pub(crate) fn ended(mut self) {
        drop(self.conn.take());
    }

    /// Rolls back whatever is open; a connection that cannot is closed. A `ROLLBACK` after the
    /// transaction ended is only a warning.
    pub(crate) async fn rollback(self) {
        if self.client().batch_execute("ROLLBACK").await.is_ok() {
            self.ended();
        }
    }
}

impl Drop for PipelinedTransaction {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(Object::take(conn));
        }
    }
}
