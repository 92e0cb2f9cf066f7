//! One future that resolves on SIGINT or SIGTERM; axum's graceful shutdown waits on it, so
//! requests in flight drain before the process exits.

use tokio::sync::watch;

/// Resolves when the process is asked to stop (Ctrl-C or SIGTERM from the kubelet).
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("interrupt received, draining"),
        _ = term => tracing::info!("SIGTERM received, draining"),
    }
}

/// A shutdown trigger that several servers in one process (`hds up`) can wait on together.
#[derive(Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// Returns the trigger and a handle; `trigger.send(true)` starts the drain everywhere.
    pub fn new() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self { rx })
    }

    /// Resolves once the drain has been requested.
    pub async fn wait(mut self) {
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}
